"""test_net: the ways of naming the tracker: an IPv6 literal on ::1, a
hostname (localhost) resolved with uv_getaddrinfo, and a tracker with two
listeners."""
import time

import runner
from procs import Peer, Skip, Tracker, connect, fail
from wire import Raw, have_ipv6_loopback


def test_ipv6_loopback():
    if not have_ipv6_loopback():
        raise Skip('this machine has no IPv6 loopback (::1); IPv6 untested')
    t = Tracker(listen='[::1]:0')
    if not t.addr.startswith('[::1]:'):
        fail('tracker on [::1]:0 says it listens on %r' % t.addr)
    alice = Peer('alice', t.addr)
    m = alice.expect(r'^registered alice \(tracker \S+, seen as (\S+)\)$', 15)
    if not m.group(1).startswith('[::1]:'):
        fail('over IPv6 the tracker should see [::1]:PORT, not %r' % m.group(1))
    bob = Peer('bob', t.addr)
    bob.registered()
    connect(alice, bob)
    alice.send('over v6 😀')
    bob.expect(r'^msg alice: over v6 😀$')
    bob.send('back over v6')
    alice.expect(r'^msg bob: back over v6$')
    alice.quit()
    bob.quit()
    t.stop()


def test_ipv6_raw_observed():
    if not have_ipv6_loopback():
        raise Skip('this machine has no IPv6 loopback (::1); IPv6 untested')
    t = Tracker(listen='[::1]:0')
    c = Raw(t.addr)
    w = c.hello()
    if not w['observed'].startswith('[::1]:'):
        fail('observed over IPv6 is %r, want [::1]:PORT' % w['observed'])
    c.must_register('alice', endpoints=['[::1]:5000'])
    look = c.lookup('alice')
    if look.get('endpoints') != ['[::1]:5000']:
        fail('IPv6 endpoint stored as %r' % look.get('endpoints'))
    t.stop()


def test_hostname_tracker():
    t = Tracker(listen='127.0.0.1:0')
    addr = 'localhost:%d' % t.port
    alice = Peer('alice', addr)
    alice.registered()
    bob = Peer('bob', addr)
    bob.registered()
    connect(alice, bob)
    alice.send('via localhost')
    bob.expect(r'^msg alice: via localhost$')
    alice.quit()
    bob.quit()
    t.stop()


def test_unresolvable_tracker_name():
    """A --tracker that does not resolve: never registered, so not "tracker
    lost" but an error naming --tracker, said once, retried."""
    alice = Peer('alice', 'no-such-host.invalid:5960')
    alice.expect(r'^error: cannot reach the tracker no-such-host\.invalid:5960 \(--tracker\): '
                 r'cannot resolve no-such-host\.invalid: .+; retrying in \d+(\.\d+)?s$', 30)
    time.sleep(2)  # retries at 0.5 s, 1 s: not said again
    alice.quit()
    alice.assert_none(r'^tracker lost')
    if alice.count(r'^error: cannot reach the tracker') != 1:
        fail('the unresolvable tracker was reported %d times (want once):\n  %s'
             % (alice.count(r'^error: cannot reach'), '\n  '.join(alice.lines)))


def test_two_listeners():
    listen = ['127.0.0.1:0']
    if have_ipv6_loopback():
        listen.append('[::1]:0')
    t = Tracker(listen=listen)
    if len(t.addrs) != len(listen):
        fail('tracker logged %r for listeners %r' % (t.addrs, listen))
    alice = Peer('alice', t.addrs[0])
    alice.registered()
    bob = Peer('bob', t.addrs[-1])
    bob.registered()
    bob.send('/list')
    bob.expect(r'^users 2: alice bob$')
    connect(bob, alice)
    alice.quit()
    bob.quit()
    t.stop()


if __name__ == '__main__':
    runner.main(globals())

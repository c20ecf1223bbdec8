"""test_nat: the connection ladder on real NATs (issue 3), in a tools/netlab
lab: hosts trk (tracker) and pub on the public 203.0.113.0/24 network, a
behind router r1 and b behind r2 (MASQUERADE, nothing forwarded inward).
Each test builds its own lab (about half a second) and removes it.  Without
root or network namespaces every test reports itself skipped, with
netlab's reason, and the runner's summary counts the skips."""
import signal
import time

import harness
from harness import NetLab, fail


def chat_both_ways(a, b, n=10, tag=''):
    """n messages each way; every one shown once and acknowledged."""
    for i in range(n):
        a.send('/msg %s a%s-%d' % (b.name, tag, i))
        b.send('/msg %s b%s-%d' % (a.name, tag, i))
    for i in range(n):
        b.expect(r'^msg %s: a%s-%d$' % (a.name, tag, i), 20)
        a.expect(r'^msg %s: b%s-%d$' % (b.name, tag, i), 20)


def assert_once(p, sender, prefix, n):
    for i in range(n):
        c = p.count(r'^msg %s: %s-%d$' % (sender, prefix, i))
        if c != 1:
            fail('%s saw message %s-%d %d times (want exactly once)' % (p.name, prefix, i, c))


def relay_sessions(t):
    return [l for l in t.log_since(0) if 'relay session for' in l and 'created' in l]


def test_public_public_direct():
    lab = NetLab()
    t = lab.tracker()
    alice = lab.peer('alice', 'pub', t)
    alice.registered()
    bob = lab.peer('bob', 'trk', t)   # the tracker's host is public too
    bob.registered()
    alice.send('/dial bob')
    alice.expect(r'^connected bob direct$', 15)
    bob.expect(r'^connected alice direct$', 15)
    chat_both_ways(alice, bob, 3)
    if relay_sessions(t):
        fail('public <-> public used the relay: %r' % relay_sessions(t))
    alice.quit()
    bob.quit()
    t.stop()


def test_nated_dials_public_direct():
    lab = NetLab()
    t = lab.tracker()
    pub = lab.peer('pub', 'pub', t)
    pub.registered()
    a = lab.peer('alice', 'a', t)
    a.registered()
    a.send('/dial pub')
    a.expect(r'^connected pub direct$', 15)
    pub.expect(r'^connected alice direct$', 15)
    chat_both_ways(a, pub, 3)
    if relay_sessions(t):
        fail('NATed -> public used the relay: %r' % relay_sessions(t))
    a.quit()
    pub.quit()
    t.stop()


def test_public_dials_nated_reverse():
    """pub cannot reach a behind r1; the tracker asks a to dial pub back,
    and that link counts as direct."""
    lab = NetLab()
    t = lab.tracker()
    a = lab.peer('alice', 'a', t)
    a.registered()
    pub = lab.peer('pub', 'pub', t, extra_args=['--log-level', 'info'])
    pub.registered()
    pub.send('/dial alice')
    pub.expect(r'^connected alice direct$', 15)
    a.expect(r'^connected pub direct$', 15)
    chat_both_ways(pub, a, 3)
    if relay_sessions(t):
        fail('public -> NATed used the relay instead of a reverse connection: %r'
             % relay_sessions(t))
    pub.quit()
    a.quit()
    t.stop()


def test_nated_nated_relay():
    lab = NetLab()
    t = lab.tracker()
    a = lab.peer('alice', 'a', t)
    a.registered()
    b = lab.peer('bob', 'b', t)
    b.registered()
    a.send('/dial bob')
    a.expect(r'^connected bob relay$', 15)
    b.expect(r'^connected alice relay$', 15)
    chat_both_ways(a, b, 20)
    for i in range(20):
        a.expect(r'^delivered bob #%d$' % (i + 1), 10)
        b.expect(r'^delivered alice #%d$' % (i + 1), 10)
    assert_once(b, 'alice', 'a', 20)
    assert_once(a, 'bob', 'b', 20)
    a.quit()
    b.quit()
    t.stop()


def test_drop_inbound_relay_within_3s():
    """Routers that DROP (connects to them hang, no RST): still relayed, at
    most 3 s after the dial."""
    lab = NetLab(drop_inbound=True)
    t = lab.tracker()
    a = lab.peer('alice', 'a', t)
    a.registered()
    b = lab.peer('bob', 'b', t)
    b.registered()
    start = time.monotonic()
    a.send('/dial bob')
    a.expect(r'^connected bob relay$', 10)
    took = time.monotonic() - start
    if took > 3.0:
        fail('relay took %.2fs after the dial (want at most 3 s)' % took)
    b.expect(r'^connected alice relay$', 10)
    chat_both_ways(a, b, 3)
    a.quit()
    b.quit()
    t.stop()


def test_tracker_restart_during_relayed_chat():
    """SIGKILL the tracker mid-chat, send while it is gone, restart it: the
    relay comes back and every message arrives exactly once."""
    lab = NetLab()
    t = lab.tracker()
    a = lab.peer('alice', 'a', t)
    a.registered()
    b = lab.peer('bob', 'b', t)
    b.registered()
    a.send('/dial bob')
    a.expect(r'^connected bob relay$', 15)
    b.expect(r'^connected alice relay$', 15)
    chat_both_ways(a, b, 5, 'x')
    t.kill()
    a.expect(r'^closed bob: connection lost$', 15)
    b.expect(r'^closed alice: connection lost$', 15)
    for i in range(5):   # typed while the tracker is down: queued
        a.send('/msg bob during-%d' % i)
        b.send('/msg alice back-%d' % i)
    t.start(listen=t.addrs)
    a.registered(timeout=40)
    b.registered(timeout=40)
    a.expect(r'^connected bob relay$', 30)
    b.expect(r'^connected alice relay$', 30)
    for i in range(5):
        b.expect(r'^msg alice: during-%d$' % i, 20)
        a.expect(r'^msg bob: back-%d$' % i, 20)
    chat_both_ways(a, b, 5, 'y')
    # Nothing repeated, from before the restart or after it.
    assert_once(b, 'alice', 'ax', 5)
    assert_once(a, 'bob', 'bx', 5)
    assert_once(b, 'alice', 'during', 5)
    assert_once(a, 'bob', 'back', 5)
    for i in range(10):
        if a.count(r'^delivered bob #%d$' % (i + 1)) != 1:
            fail('alice: delivered bob #%d shown %d times' % (i + 1,
                 a.count(r'^delivered bob #%d$' % (i + 1))))
    a.quit()
    b.quit()
    t.stop()


if __name__ == '__main__':
    harness.main(globals())

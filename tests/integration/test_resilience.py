"""test_resilience: the tracker going away and coming back.  The registry
survives a restart (SIGTERM or kill -9), peers register again by themselves,
and a direct chat does not need the tracker once it is up."""
import re

import runner
from procs import Peer, Tracker, connect, fail, start_peers
from sodium import Key
from wire import Raw

LOST = r'^tracker lost: .+; reconnecting in \d+(\.\d+)?s$'


def claim_refused(tracker, name):
    """A raw client with a brand-new key claiming name gets name_taken."""
    thief = Raw(tracker.addr, label='thief %s' % name)
    r = thief.register(name, key=Key())
    if r.get('t') != 'error' or r.get('code') != 'name_taken':
        fail('after the restart, a new key claiming %r got %r (want name_taken)' % (name, r))
    thief.expect_closed()


def test_tracker_lost_said_once_per_outage():
    """Line mode says "tracker lost" once per outage and reason, not once
    per failed retry (the log has those): stopping the tracker prints its
    shutdown, the first retry that cannot connect prints that, and further
    retries print nothing.  After registering again an outage is news."""
    t = Tracker()
    alice = Peer('alice', t.addr, extra_args=['--log-level', 'info'])
    alice.registered()
    t.stop()
    alice.expect(r'^tracker lost: .*shutting down.*; reconnecting in', 10)
    alice.expect(r'^tracker lost: cannot connect to .*; reconnecting in', 10)
    _, i = alice.proc.wait_stderr(r'tracker still unreachable', 15)
    alice.proc.wait_stderr(r'tracker still unreachable', 15, start=i + 1)
    lost = [l for l in alice.lines if l.startswith('tracker lost')]
    if len(lost) != 2:
        fail('after two more failed retries, %d "tracker lost" lines (want 2): %r' % (
            len(lost), lost))
    t.restart()
    alice.registered(timeout=40)
    t.stop()
    alice.expect(LOST, 10)
    alice.quit()


def test_restart_keeps_bindings_and_peers_reregister():
    t = Tracker()
    alice, bob = start_peers(t.addr, 'alice', 'bob')
    t.stop()
    alice.expect(LOST, 10)
    bob.expect(LOST, 10)
    t.restart()
    claim_refused(t, 'alice')
    claim_refused(t, 'BOB')
    alice.registered(timeout=40)
    bob.registered(timeout=40)
    # Everything works again through the new tracker.
    alice.send('/list')
    alice.expect(r'^users 2: alice bob$')
    connect(alice, bob)
    alice.send('after the restart')
    bob.expect(r'^msg alice: after the restart$')
    alice.quit()
    bob.quit()
    t.stop()


def test_kill9_keeps_acknowledged_registrations():
    t = Tracker()
    keys = {}
    for i in range(20):
        # Each acknowledged registration must be on disk before its answer.
        name = 'user%02d' % i
        keys[name] = Key()
        c = Raw(t.addr, label=name)
        c.must_register(name, keys[name], endpoints=['127.0.0.1:%d' % (2000 + i)])
    t.kill()
    t.restart()
    for name in ('user00', 'user10', 'user19'):
        claim_refused(t, name)
    # The owners' keys still work, and endpoints and last_seen survived.
    owner = Raw(t.addr, label='owner user05')
    owner.must_register('user05', keys['user05'])
    look = owner.lookup('user07')
    if look.get('t') != 'lookup_result' or look.get('key') != keys['user07'].pk:
        fail('after kill -9, lookup user07 gave %r' % look)
    if look.get('online') is not False:
        fail('after a restart nobody but user05 is online; lookup user07 gave %r' % look)
    if look.get('endpoints') != ['127.0.0.1:2007']:
        fail('endpoints lost across kill -9: %r' % look)
    if not isinstance(look.get('last_seen'), int) or look['last_seen'] <= 0:
        fail('last_seen lost across kill -9: %r' % look)
    t.stop()


def test_peer_reregisters_after_kill9():
    t = Tracker()
    alice = Peer('alice', t.addr)
    alice.registered()
    t.kill()
    alice.expect(LOST, 10)
    t.restart()
    alice.registered(timeout=40)
    claim_refused(t, 'Alice')
    alice.quit()
    t.stop()


def test_chat_survives_tracker_death():
    t = Tracker()
    alice, bob = start_peers(t.addr, 'alice', 'bob')
    connect(alice, bob)
    alice.send('before')
    bob.expect(r'^msg alice: before$')
    t.kill()
    alice.expect(LOST, 10)
    bob.expect(LOST, 10)
    for i in range(5):
        alice.send('a-%d sans tracker' % i)
        bob.send('b-%d sans tracker' % i)
    for i in range(5):
        bob.expect(r'^msg alice: a-%d sans tracker$' % i)
        alice.expect(r'^msg bob: b-%d sans tracker$' % i)
    alice.expect(r'^delivered bob #6$')
    bob.expect(r'^delivered alice #5$')
    alice.assert_none(r'^closed ')
    bob.assert_none(r'^closed ')
    # Quitting while the tracker is still gone is clean too.
    alice.quit()
    bob.expect(r'^closed alice: ')
    bob.quit()


def test_peer_started_before_tracker():
    """A peer whose tracker is not up yet keeps trying and registers once it
    is."""
    t = Tracker()
    addr = t.addr
    t.stop()
    alice = Peer('alice', addr)
    # Not reachable yet, never registered: said as such, naming --tracker,
    # and retried.
    alice.expect(r'^error: cannot reach the tracker %s \(--tracker\): cannot connect to .+; '
                 r'retrying in \d+(\.\d+)?s$' % re.escape(addr), 15)
    t.start(listen=addr)
    alice.registered(timeout=40)
    alice.assert_none(r'^tracker lost')
    # Registered once: a loss now is "tracker lost".
    t.stop()
    alice.expect(r'^tracker lost: .+; reconnecting in', 15)
    t.start(listen=addr)
    alice.registered(timeout=40)
    alice.quit()
    t.stop()


def test_presence_after_restart():
    t = Tracker()
    alice, bob = start_peers(t.addr, 'alice', 'bob')
    t.stop()
    alice.expect(LOST, 10)
    bob.expect(LOST, 10)
    bob.quit()
    t.restart()
    alice.registered(timeout=40)
    # bob is gone: known, but offline.
    alice.send('/list')
    alice.expect(r'^users 1: alice$')
    alice.send('/dial bob')
    alice.expect(r'^error: cannot reach bob: bob is offline$', 15)
    alice.quit()
    t.stop()


def test_tracker_lost_while_a_dial_waits_on_it():
    """The tracker drops while a dial's reverse request is in flight: the
    failed request's callback asks for a relay at once, on a connection
    that is gone.  That request must fail from the loop (the dial says it
    cannot reach bob), never touch the closed connection (it used to crash
    the peer with a NULL dereference)."""
    import os
    import socket
    ls = socket.socket()
    ls.bind(('127.0.0.1', 0))
    ls.listen(1)
    dead = socket.socket()
    dead.bind(('127.0.0.1', 0))  # bound, never listening: connections are refused
    alice = Peer('alice', '127.0.0.1:%d' % ls.getsockname()[1])
    ls.settimeout(15)
    c, _ = ls.accept()
    t = Raw.from_socket(c, label='fake tracker')
    t.recv_type('hello')
    t.send({'t': 'welcome', 'v': 1, 'nonce': os.urandom(32), 'ttl': 60})
    t.recv_type('register')
    t.send({'t': 'registered', 'name': 'alice'})
    alice.registered()
    alice.send('/dial bob')
    f = t.recv_type('lookup')
    t.send({'t': 'lookup_result', 'id': f['id'], 'name': 'bob', 'key': os.urandom(32),
            'online': True, 'endpoints': ['127.0.0.1:%d' % dead.getsockname()[1]]})
    t.recv_type('connect_request')  # every endpoint refused: the reverse request
    t.close()
    alice.expect(LOST, 10)
    alice.expect(r'^error: cannot reach bob: ', 10)
    alice.quit()
    dead.close()
    ls.close()


if __name__ == '__main__':
    runner.main(globals())

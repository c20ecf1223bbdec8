"""test_punch: the tracker's side of hole punching (docs/PROTOCOL.md,
"punch_request", "punch_result", "punch", "ping / pong"), from raw protocol
clients: the feature in welcome, the error answers in their documented
order, malformed requests, what both sides learn (the other's public
address: its observed IP with its first advertised endpoint port of that
family, and when to start, from the round trips the tracker measures with
its own pings), and that only a peer that listed "punch" is pinged.  One
test runs a real peer against a fake tracker to see it answer the
tracker's ping.  The punch itself between real peers behind NATs is in
test_nat.py."""
import socket
import time

import runner
from procs import Peer, Skip, Tracker, fail
from wire import Raw, have_ipv6_loopback, registered_client

PUNCH = ['connect_failed', 'punch', 'mailbox']


def punch_client(t, name, endpoints=('127.0.0.1:9',), answer=True, label=None):
    """A raw client registered with the punch feature.  The tracker pings it
    right after registered; answer: pong at once (False: never)."""
    c = Raw(t.addr, label=label or name)
    w = c.hello()
    if 'punch' not in w.get('features', []):
        fail('welcome does not list the punch feature: %r' % w)
    c.must_register(name, endpoints=endpoints, features=PUNCH)
    f = c.next_frame()
    if f != {'t': 'ping'}:
        fail('%s listed punch: the first frame after registered is %r, want the tracker\'s '
             'ping' % (name, f))
    if answer:
        c.send({'t': 'pong'})
    return c


def expect_pong_only(c):
    """c is served and nothing else is waiting for it (no ping, no push
    but presence): a ping gets the pong as the next frame."""
    c.send({'t': 'ping'})
    f = c.next_frame()
    if f != {'t': 'pong'}:
        fail('%s: ping answered %r, want only the pong' % (c.label, f))


def ipv4_with_port(observed, port):
    return '%s:%d' % (observed.rsplit(':', 1)[0], port)


def test_punch_success_addresses():
    """Both sides at once: the sender gets punch_result {id, addr, delay_ms}
    with the target's observed IP and its first IPv4 endpoint's port (IPv6
    endpoints skipped: the target reaches the tracker over IPv4), the
    target gets punch {from (as stored), key, addr, delay_ms} with the
    sender's.  Both are pinged again for fresh round trips.  The sender
    need not list punch itself; then it is never pinged."""
    t = Tracker()
    bob = punch_client(t, 'Bob', endpoints=['[::1]:7001', '10.9.9.9:7000', '10.9.9.8:7002'])
    alice = punch_client(t, 'alice', endpoints=['[::1]:5000', '10.0.0.5:4001'])
    r = alice.request({'t': 'punch_request', 'to': 'BOB'})
    if r.get('t') != 'punch_result' or set(r) != {'t', 'id', 'addr', 'delay_ms'}:
        fail('punch_request answered %r, want punch_result {id, addr, delay_ms}' % r)
    if r['addr'] != ipv4_with_port(bob.observed, 7000):
        fail('punch_result addr %r, want bob\'s observed IP with his first IPv4 endpoint '
             'port: %r' % (r['addr'], ipv4_with_port(bob.observed, 7000)))
    if not isinstance(r['delay_ms'], int) or not 0 <= r['delay_ms'] <= 2000:
        fail('punch_result delay_ms %r, want a uint of at most 2000' % r['delay_ms'])
    p = bob.next_frame()
    if p.get('t') != 'punch' or set(p) != {'t', 'from', 'key', 'addr', 'delay_ms'}:
        fail('bob got %r, want a punch push {from, key, addr, delay_ms}' % p)
    if p['from'] != 'alice' or p['key'] != alice.key.pk:
        fail('punch push names %r with key %r, want alice and her key' % (p['from'], p['key']))
    if p['addr'] != ipv4_with_port(alice.observed, 4001):
        fail('punch push addr %r, want %r' % (p['addr'], ipv4_with_port(alice.observed, 4001)))
    if not isinstance(p['delay_ms'], int) or not 0 <= p['delay_ms'] <= 2000:
        fail('punch push delay_ms %r' % p['delay_ms'])
    for c in (alice, bob):  # "again after each hole punch it took part in"
        f = c.next_frame()
        if f != {'t': 'ping'}:
            fail('%s after the punch got %r, want the tracker\'s ping' % (c.label, f))
        c.send({'t': 'pong'})
    # A sender without the feature (an older peer's punch_request, or a
    # client that just does not take pings) is answered, never pinged.
    carol = Raw(t.addr, label='carol')
    carol.must_register('carol', endpoints=['10.1.1.1:6000'])
    carol.expect_silence(0.5)
    r = carol.request({'t': 'punch_request', 'to': 'bob'})
    if r.get('t') != 'punch_result' or r['addr'] != ipv4_with_port(bob.observed, 7000):
        fail('carol\'s punch_request answered %r' % r)
    p = bob.next_frame()
    if p.get('t') != 'punch' or p['from'] != 'carol' or \
            p['addr'] != ipv4_with_port(carol.observed, 6000):
        fail('bob got %r for carol\'s punch' % p)
    expect_pong_only(carol)
    carol.expect_silence(0.5)
    t.stop()


def test_punch_over_ipv6():
    """Users who reach the tracker over IPv6 get each other's observed IPv6
    address with the first IPv6 endpoint's port (IPv4 endpoints skipped)."""
    if not have_ipv6_loopback():
        raise Skip('no IPv6 loopback here')
    t = Tracker(listen='[::1]:0')
    bob = punch_client(t, 'bob', endpoints=['10.9.9.9:7000', '[fd00::9]:7001', '[fd00::8]:7002'])
    alice = punch_client(t, 'alice', endpoints=['[fd00::1]:5000'])
    for c in (alice, bob):
        if not c.observed.startswith('[::1]:'):
            fail('%s is not seen over IPv6: %r' % (c.label, c.observed))
    r = alice.request({'t': 'punch_request', 'to': 'bob'})
    if r.get('t') != 'punch_result' or r['addr'] != '[::1]:7001':
        fail('punch_request over IPv6 answered %r, want addr [::1]:7001' % r)
    p = bob.next_frame()
    if p.get('t') != 'punch' or p['addr'] != '[::1]:5000':
        fail('bob got %r, want addr [::1]:5000' % p)
    # alice has no IPv4 endpoint, so over IPv4 she could not punch
    t4 = Tracker()
    a4 = punch_client(t4, 'alice', endpoints=['[fd00::1]:5000'])
    punch_client(t4, 'bob', endpoints=['10.9.9.9:7000'])
    r = a4.request({'t': 'punch_request', 'to': 'bob'})
    if r.get('t') != 'error' or r.get('code') != 'unsupported':
        fail('a sender with only IPv6 endpoints over IPv4 got %r, want unsupported' % r)
    t.stop()
    t4.stop()


def test_punch_request_errors():
    """Errors answer the request's id and keep the connection, in the order
    of connect_request: not_registered, bad_name (invalid, or one's own
    name), offline, not_found; then unsupported (the target did not list
    punch, or a side has no endpoint of the family it reaches us over)."""
    t = Tracker()
    watcher = registered_client(t, 'watcher')
    noreg = Raw(t.addr, label='unregistered')
    noreg.hello()
    for to in ('watcher', 'bad name', 'nobody'):  # not_registered comes first
        r = noreg.request({'t': 'punch_request', 'to': to})
        if r.get('t') != 'error' or r.get('code') != 'not_registered':
            fail('punch_request to %r before register answered %r' % (to, r))
    expect_pong_only(noreg)

    gone = punch_client(t, 'gone')
    gone.close()
    watcher.recv_type('presence')  # gone online
    p = watcher.recv_type('presence')
    if p != {'t': 'presence', 'name': 'gone', 'online': False}:
        fail('watcher got %r, want gone going offline' % p)
    old = Raw(t.addr, label='old')
    old.must_register('old')   # no features: a protocol-1 peer
    v6only = punch_client(t, 'v6only', endpoints=['[::1]:4000'])
    noeps = punch_client(t, 'noeps', endpoints=[])
    bob = punch_client(t, 'bob')
    alice = punch_client(t, 'alice', endpoints=['127.0.0.1:4000'])
    cases = [('bad name', 'bad_name'), ('', 'bad_name'), ('x' * 100, 'bad_name'),
             ('ALICE', 'bad_name'), ('Alice', 'bad_name'),
             ('gone', 'offline'), ('nobody', 'not_found'),
             ('old', 'unsupported'), ('v6only', 'unsupported'), ('noeps', 'unsupported')]
    for to, code in cases:
        rid = alice.next_id
        r = alice.request({'t': 'punch_request', 'to': to})
        if r.get('t') != 'error' or r.get('code') != code or r.get('id') != rid:
            fail('punch_request to %r answered %r, want error %s with id %d' % (to, r, code, rid))
        if not isinstance(r.get('msg'), str) or not r['msg']:
            fail('error %s has no msg: %r' % (code, r))
    # The sender's own endpoints count as much as the target's.
    r = noeps.request({'t': 'punch_request', 'to': 'bob'})
    if r.get('t') != 'error' or r.get('code') != 'unsupported':
        fail('punch_request from a peer without endpoints answered %r' % r)
    # Nobody was told anything, nobody was closed.
    for c in (alice, bob, old, v6only, noeps):
        expect_pong_only(c)
    t.stop()


def test_punch_request_malformed():
    """A missing or mistyped id or to is bad_message and the close, before
    register as after; the tracker serves the others on."""
    t = Tracker()
    bob = punch_client(t, 'bob')
    bad = [{'to': 'bob'}, {'id': 'one', 'to': 'bob'}, {'id': -1, 'to': 'bob'},
           {'id': 1.5, 'to': 'bob'}, {'id': 1}, {'id': 1, 'to': 5},
           {'id': 1, 'to': b'bob'}, {'id': 1, 'to': ['bob']}, {'id': None, 'to': 'bob'}]
    for i, fields in enumerate(bad):
        c = punch_client(t, 'mal%d' % i, label='punch_request %r' % fields)
        c.send(dict({'t': 'punch_request'}, **fields))
        c.expect_error('bad_message')
    c = Raw(t.addr, label='unregistered malformed')
    c.hello()
    c.send({'t': 'punch_request', 'to': 'bob'})
    c.expect_error('bad_message')
    expect_pong_only(bob)  # no punch push came before the pong
    t.stop()


def test_punch_delay_from_round_trips():
    """delay_ms: the side with the shorter round trip (from the tracker's
    last ping) waits half the difference, the other 0; 0 both ways while
    either round trip is unknown (a peer that never answered)."""
    t = Tracker()
    fast = punch_client(t, 'fast')
    slow = punch_client(t, 'slow', answer=False)
    time.sleep(0.4)  # the round trip being measured: slow answers 400 ms late
    slow.send({'t': 'pong'})
    mute = punch_client(t, 'mute', answer=False)
    r = fast.request({'t': 'punch_request', 'to': 'slow'})
    p = slow.next_frame()
    if r.get('t') != 'punch_result' or p.get('t') != 'punch':
        fail('punch fast -> slow: %r / %r' % (r, p))
    if not 150 <= r['delay_ms'] <= 400 or p['delay_ms'] != 0:
        fail('round trips about 0 and 400 ms: fast waits %r ms (want about 200), slow %r '
             '(want 0)' % (r['delay_ms'], p['delay_ms']))
    # The other way round, the same waits on the same sides.
    fast.recv_type('ping')
    fast.send({'t': 'pong'})
    slow.recv_type('ping')
    slow.send({'t': 'pong'})   # at once this time: slow is as fast now
    for c in (fast, slow):      # both pongs counted before the next punch
        expect_pong_only(c)
    r = slow.request({'t': 'punch_request', 'to': 'fast'})
    p = fast.next_frame()
    if r.get('t') != 'punch_result' or p.get('t') != 'punch':
        fail('punch slow -> fast: %r / %r' % (r, p))
    if r['delay_ms'] > 100 or p['delay_ms'] > 100:
        fail('both round trips short now, yet the waits are %r and %r ms' % (r['delay_ms'],
                                                                            p['delay_ms']))
    # mute never answered its ping: its round trip is unknown.
    for c in (fast, slow):
        f = c.next_frame()
        if f != {'t': 'ping'}:
            fail('%s after the second punch got %r' % (c.label, f))
        c.send({'t': 'pong'})
    r = fast.request({'t': 'punch_request', 'to': 'mute'})
    p = mute.next_frame()
    if r.get('t') != 'punch_result' or p.get('t') != 'punch' or r['delay_ms'] != 0 or \
            p['delay_ms'] != 0:
        fail('a punch with an unknown round trip: %r / %r, want delay_ms 0 on both' % (r, p))
    # Its ping still being unanswered, mute gets no second one.
    mute.expect_silence(0.3)
    t.stop()


def test_punch_delay_capped():
    """A round trip of seconds is not waited for in full: delay_ms is at
    most 2000."""
    t = Tracker()
    fast = punch_client(t, 'fast')
    slow = punch_client(t, 'slow', answer=False)
    time.sleep(4.3)
    slow.send({'t': 'pong'})
    expect_pong_only(slow)
    r = fast.request({'t': 'punch_request', 'to': 'slow'})
    if r.get('t') != 'punch_result' or r['delay_ms'] != 2000:
        fail('with round trips about 0 and 4300 ms, punch_result is %r (want delay_ms 2000)' % r)
    p = slow.next_frame()
    if p.get('t') != 'punch' or p['delay_ms'] != 0:
        fail('the slow side got %r (want delay_ms 0)' % p)
    t.stop()


def test_no_ping_without_the_feature():
    """A peer that did not list punch (a protocol-1 peer, or features
    without it) is never pinged by the tracker, only answered."""
    t = Tracker()
    plain = Raw(t.addr, label='plain')
    plain.must_register('plain')
    other = Raw(t.addr, label='other')
    other.must_register('other', features=['connect_failed', 'mailbox', 'something'])
    plain.recv_type('presence')
    for _ in range(3):
        for c in (plain, other):
            c.expect_silence(0.4)
            expect_pong_only(c)
    t.stop()


def test_unasked_pong_is_only_a_sign_of_life():
    """A pong the tracker did not ask for gets no answer and does not
    close; a ping is still answered."""
    t = Tracker()
    c = punch_client(t, 'alice')
    for _ in range(3):
        c.send({'t': 'pong'})
    c.expect_silence(0.5)
    expect_pong_only(c)
    plain = registered_client(t, 'plain')
    plain.send({'t': 'pong'})
    plain.expect_silence(0.3)
    expect_pong_only(plain)
    t.stop()


def test_peer_answers_tracker_ping():
    """A real peer lists punch in its register and answers the tracker's
    ping with pong at once, each time (here a fake tracker in the test,
    whose welcome lists punch, pings it)."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(('127.0.0.1', 0))
    srv.listen(1)
    srv.settimeout(15)
    peer = Peer('alice', '127.0.0.1:%d' % srv.getsockname()[1])
    sock, _ = srv.accept()
    srv.close()
    trk = Raw.from_socket(sock, label='fake tracker')
    h = trk.recv_type('hello', 15)
    if h.get('role') != 'peer':
        fail('the peer said %r' % h)
    trk.send({'t': 'welcome', 'v': 1, 'nonce': bytes(32), 'observed': '127.0.0.1:1',
              'ttl': 60, 'features': PUNCH})
    reg = trk.recv_type('register', 15)
    if 'punch' not in reg.get('features', []):
        fail('the peer\'s register does not list punch: %r' % reg)
    trk.send({'t': 'registered', 'name': 'alice', 'observed': '127.0.0.1:1'})
    peer.registered()
    for i in range(3):
        start = time.monotonic()
        trk.send({'t': 'ping'})
        while trk.recv(5).get('t') != 'pong':
            pass
        took = time.monotonic() - start
        if took > 2:
            fail('the peer took %.1fs to answer ping %d' % (took, i))
    peer.quit()


if __name__ == '__main__':
    runner.main(globals())

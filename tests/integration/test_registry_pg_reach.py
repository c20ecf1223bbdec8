"""test_registry_pg_reach: reaching a user of another tracker on one
shared PostgreSQL registry (tracker/remote.c; PROTOCOL.md, "Across
trackers").  alice at tracker 1 asks for bob at tracker 2: the
connect_request push, connect_failed, a hole punch and a relay cross
through PostgreSQL (a NOTIFY on the target tracker's own channel); the
relay meets at bob's tracker and alice is told where to join.  Real
servers (pgserver.py; skipped loudly without PostgreSQL)."""

import time

import runner
import test_e2e
import test_relay
from pgserver import PgServer
from procs import fail
from test_punch import PUNCH, ipv4_with_port, punch_client
from test_registry_pg import await_presence, lock_users, pg_tracker, stop_all, unlock
from wire import Raw


def two_trackers(extra=()):
    pg = PgServer()
    return pg, pg_tracker(pg, 'tracker1', extra), pg_tracker(pg, 'tracker2', extra)


def test_pg_connect_request_and_failed_across_trackers():
    pg, t1, t2 = two_trackers()
    alice = Raw(t1.addr, label='alice@t1')
    alice.must_register('alice', endpoints=('127.0.0.1:4001',), features=['connect_failed'])
    bob = Raw(t2.addr, label='bob@t2')
    bob.must_register('Bob', endpoints=('127.0.0.1:4002',), features=['connect_failed'])
    r = alice.request({'t': 'connect_request', 'to': 'BOB', 'tag': 4242})
    if r.get('t') != 'connect_result':
        fail('connect_request for bob at the other tracker answered %r' % r)
    push = bob.next_frame()
    want = {'t': 'connect_request', 'from': 'alice', 'key': alice.key.pk,
            'endpoints': ['127.0.0.1:4001'], 'observed': alice.observed, 'tag': 4242}
    if push != want:
        fail('bob at tracker 2 got %r, want %r' % (push, want))
    bob.send({'t': 'connect_failed', 'to': 'alice', 'reason': 'no route', 'tag': 4242})
    f = alice.next_frame()
    if f != {'t': 'connect_failed', 'from': 'Bob', 'reason': 'no route', 'tag': 4242}:
        fail('alice at tracker 1 got %r, want bob\'s connect_failed' % f)
    # A user of tracker 2 without the feature never gets the push, from
    # either tracker (an older peer would close on a type it does not know).
    carol = Raw(t2.addr, label='carol@t2')
    carol.must_register('carol')
    r = carol.request({'t': 'connect_request', 'to': 'alice'})
    if r.get('t') != 'connect_result':
        fail('carol\'s connect_request for alice: %r' % r)
    if alice.next_frame().get('from') != 'carol':
        fail('alice did not get carol\'s connect_request')
    alice.send({'t': 'connect_failed', 'to': 'carol', 'reason': 'x'})
    carol.expect_silence(1.0)
    # Offline and unknown users are refused at the asking tracker, as before.
    # Tracker 1 hears of carol's logout by NOTIFY, after tracker 2 committed
    # it: the push to alice is the event to await (a polling loop ran into
    # the rate limit on a slow machine).
    carol.close()
    bob.close()
    await_presence(alice, 'carol', False)
    for name, code in (('carol', 'offline'), ('nobody', 'not_found')):
        r = alice.request({'t': 'connect_request', 'to': name})
        if r.get('t') != 'error' or r.get('code') != code:
            fail('connect_request for %s: %r, want error %s' % (name, r, code))
    stop_all((alice,), (t1, t2))


def answer_pings(c):
    """The next frame but the tracker's pings (each answered) and presence."""
    while True:
        f = c.next_frame()
        if f != {'t': 'ping'}:
            return f
        c.send({'t': 'pong'})


def test_pg_punch_across_trackers():
    """alice at tracker 1 punches to bob at tracker 2: bob's tracker sends
    him the punch and answers alice's punch_result through PostgreSQL,
    each with the other's public address; a target that cannot punch
    gets alice error unsupported from its tracker."""
    pg, t1, t2 = two_trackers()
    bob = punch_client(t2, 'Bob', endpoints=['10.9.9.9:7000'], label='bob@t2')
    alice = punch_client(t1, 'alice', endpoints=['10.0.0.5:4001'], label='alice@t1')
    alice.send({'t': 'punch_request', 'id': 1, 'to': 'bob'})
    # Tracker 1 pings alice for a fresh round trip as soon as it passed the
    # request on; the answer comes later, through PostgreSQL.
    r = answer_pings(alice)
    if r.get('t') != 'punch_result' or set(r) != {'t', 'id', 'addr', 'delay_ms'} or r['id'] != 1:
        fail('punch_request across trackers answered %r' % r)
    if r['addr'] != ipv4_with_port(bob.observed, 7000):
        fail('punch_result addr %r, want %r' % (r['addr'], ipv4_with_port(bob.observed, 7000)))
    p = bob.next_frame()
    if p.get('t') != 'punch' or p.get('from') != 'alice' or p.get('key') != alice.key.pk or \
            p.get('addr') != ipv4_with_port(alice.observed, 4001):
        fail('bob at tracker 2 got %r, want alice\'s punch' % p)
    if not isinstance(p.get('delay_ms'), int) or not 0 <= p['delay_ms'] <= 2000:
        fail('punch delay_ms %r' % p.get('delay_ms'))
    t2.proc.wait_stderr(r'punch: alice \(.*, tracker [0-9a-f]{32}\) <-> Bob')
    old = Raw(t2.addr, label='old@t2')
    old.must_register('old')  # no features: an older peer
    if bob.next_frame() != {'t': 'ping'}:
        fail('bob was not pinged after the punch')
    alice.send({'t': 'punch_request', 'id': 2, 'to': 'old'})
    r = answer_pings(alice)
    if r.get('t') != 'error' or r.get('code') != 'unsupported' or 'cannot punch' not in r.get('msg', ''):
        fail('punch_request for an older peer at tracker 2: %r, want unsupported' % r)
    stop_all((alice, bob, old), (t1, t2))


def test_pg_relay_meets_at_the_callee_tracker():
    """alice at tracker 1 asks for a relay to bob at tracker 2: tracker 2
    creates the session, offers it to bob, and alice's relay_result says
    to join at tracker 2 (relay: its address).  Both join there and bytes
    go both ways; joining at tracker 1 finds no such session."""
    pg, t1, t2 = two_trackers()
    ca = Raw(t1.addr, label='alice@t1')
    ca.must_register('alice')
    cb = Raw(t2.addr, label='bob@t2')
    cb.must_register('bob')
    r = ca.request({'t': 'relay_request', 'to': 'bob'})
    if r.get('t') != 'relay_result' or set(r) != {'t', 'id', 'session', 'relay'} or \
            len(r.get('session', b'')) != 16:
        fail('relay_request across trackers answered %r, want {id, session, relay}' % r)
    if r['relay'] != t2.addr:
        fail('relay_result says to join at %r, want tracker 2 at %s' % (r['relay'], t2.addr))
    offer = cb.next_frame()
    if offer.get('from') != 'alice' or offer.get('session') != r['session']:
        fail('bob\'s relay_offer %r' % offer)
    wrong = test_relay.relay_conn(t1, 'relay alice at t1')
    test_relay.join(wrong, r['session'], 'alice', ca.key)
    wrong.expect_error('not_found')
    ra = test_relay.relay_conn(t2, 'relay alice at t2')
    rb = test_relay.relay_conn(t2, 'relay bob')
    test_relay.join(ra, r['session'], 'alice', ca.key)
    test_relay.join(rb, r['session'], 'bob', cb.key)
    ra.recv_type('relay_ready')
    rb.recv_type('relay_ready')
    ra.send_bytes(b'across the trackers')
    if test_relay.recv_raw(rb, 19) != b'across the trackers':
        fail('bob did not get alice\'s relayed bytes')
    rb.send_bytes(b'and back')
    if test_relay.recv_raw(ra, 8) != b'and back':
        fail('alice did not get bob\'s relayed bytes')
    ra.close()
    rb.close()
    stop_all((ca, cb), (t1, t2))


def pings_answered_at_once(clients):
    """20 pings from each client, each answered within the same half second."""
    for c in clients:
        t0 = time.monotonic()
        for _ in range(20):
            c.ping()
        took = time.monotonic() - t0
        if took > 0.5:
            fail('%s: 20 pings took %.2f s while a request waited for PostgreSQL' %
                 (c.label, took))


def test_pg_requests_for_remote_users_do_not_stall_the_tracker():
    """Where a user of another tracker is, its key, and a list page come
    from PostgreSQL without the loop waiting (the read joins the next batch):
    while an operator's lock holds parley_users, alice's connect_request
    for bob (tracker 2) and her relay_join at tracker 2 (where she is not
    online, so her key must be read) wait, the pings of alice and carol
    at both trackers are answered at once (and carol's list at tracker 2
    waits too), and once the lock goes the requests are answered and the
    relay starts, with the bytes alice sent right after her relay_join."""
    pg, t1, t2 = two_trackers()
    quiet = ['connect_failed', 'subscribe']  # subscribed to nobody: no presence pushes
    alice = Raw(t1.addr, label='alice@t1')
    alice.must_register('alice', endpoints=('127.0.0.1:4001',), features=quiet)
    bob = Raw(t2.addr, label='bob@t2')
    bob.must_register('bob', endpoints=('127.0.0.1:4002',), features=quiet)
    carol = Raw(t2.addr, label='carol@t2')
    carol.must_register('carol', features=quiet)
    r = alice.request({'t': 'relay_request', 'to': 'bob'})
    if r.get('t') != 'relay_result' or r.get('relay') != t2.addr:
        fail('relay_request across trackers answered %r' % r)
    token = r['session']
    if bob.next_frame().get('session') != token:
        fail('bob got no relay_offer for the session')
    rb = test_relay.relay_conn(t2, 'relay bob')
    ra = test_relay.relay_conn(t2, 'relay alice')
    lock = lock_users(pg)
    # bob is online at tracker 2: his own session has his key, no read.
    test_relay.join(rb, token, 'bob', bob.key)
    ra.send_bytes(test_relay.join_frame(ra, token, 'alice', alice.key) + b'sent before ready')
    alice.send({'t': 'connect_request', 'to': 'bob', 'id': 900})
    carol.send({'t': 'list', 'id': 901})  # a page is read from the shared table too
    pings_answered_at_once((alice, carol, bob))
    alice.expect_silence(0.3)  # really waiting for the lock, not answered from elsewhere
    carol.expect_silence(0.1)
    rb.expect_silence(0.1)
    unlock(lock)
    f = carol.next_frame()
    if f != {'t': 'list_result', 'id': 901, 'users': ['alice', 'bob', 'carol']}:
        fail('carol\'s list answered %r once the lock went' % f)
    f = alice.next_frame()
    if f != {'t': 'connect_result', 'id': 900}:
        fail('alice\'s connect_request answered %r once the lock went' % f)
    push = bob.next_frame()
    if push.get('t') != 'connect_request' or push.get('from') != 'alice' or \
            push.get('endpoints') != ['127.0.0.1:4001']:
        fail('bob got %r, want alice\'s connect_request' % push)
    ra.recv_type('relay_ready')
    rb.recv_type('relay_ready')
    if test_relay.recv_raw(rb, 17) != b'sent before ready':
        fail('the bytes alice pipelined after relay_join did not reach bob')
    ra.close()
    rb.close()
    stop_all((alice, bob, carol), (t1, t2))


def test_pg_relay_addr_flag():
    """--relay-addr: what tracker 2 tells the other trackers' users instead
    of the address its own user reached it at."""
    pg = PgServer()
    t1 = pg_tracker(pg, 'tracker1')
    t2 = pg_tracker(pg, 'tracker2', ['--relay-addr', '192.0.2.7:5960'])
    ca = Raw(t1.addr, label='alice@t1')
    ca.must_register('alice')
    cb = Raw(t2.addr, label='bob@t2')
    cb.must_register('bob')
    r = ca.request({'t': 'relay_request', 'to': 'bob'})
    if r.get('relay') != '192.0.2.7:5960':
        fail('with --relay-addr tracker 2 answered %r' % r)
    # A relay_request within one tracker names no other tracker.
    r = cb.request({'t': 'relay_request', 'to': 'bob'})
    if r.get('code') != 'bad_name':
        fail('%r' % r)
    dave = Raw(t2.addr, label='dave@t2')
    dave.must_register('dave')
    r = cb.request({'t': 'relay_request', 'to': 'dave'})
    if r.get('t') != 'relay_result' or 'relay' in r:
        fail('a relay within tracker 2 answered %r, want no relay field' % r)
    stop_all((ca, cb, dave), (t1, t2))


def test_pg_real_peer_relayed_to_a_user_of_another_tracker():
    """The real client: alice at tracker 1 dials bob at tracker 2, whose
    endpoint is dead, goes to the relay, joins it at tracker 2 as told,
    and chats with bob (played by the test) through it."""
    pg, t1, t2 = two_trackers()
    alice, link, rb = test_e2e.relayed_alice(t1, bob_t=t2)
    alice.send('hello from tracker 1')
    m = link.recv_type('msg')
    if m.get('text') != 'hello from tracker 1':
        fail('bob got %r' % m)
    link.send({'t': 'ack', 'id': m['id']})
    alice.expect(r'^delivered bob #1$')
    link.send({'t': 'msg', 'id': 7, 'ts': 0, 'text': 'and back from tracker 2'})
    alice.expect(r'^msg bob: and back from tracker 2$')
    t2.proc.wait_stderr(r'relay: alice \(tracker [0-9a-f]{32}\) <-> bob, joining at ')
    alice.quit()
    stop_all((), (t1, t2))



def test_pg_three_trackers():
    """Three trackers on one registry: each user's requests reach the other
    two trackers' users, each relay meets at its callee's tracker, and
    presence goes everywhere."""
    pg = PgServer()
    ts = [pg_tracker(pg, 'tracker%d' % i) for i in (1, 2, 3)]
    names = ('alice', 'bob', 'carol')
    cs = []
    for t, n in zip(ts, names):
        c = Raw(t.addr, label='%s@%s' % (n, t.label))
        c.must_register(n, features=['connect_failed'])
        cs.append(c)
    for i, c in enumerate(cs):
        # Everyone hears of those who came after; the notification of one
        # who came before may still have been on its way when it
        # registered, so an "online" restating that is let through.
        want = set(names[i + 1:])
        while want:
            f = c.recv()
            if f.get('t') != 'presence' or f.get('online') is not True or \
                    f.get('name') not in names[:i] + tuple(want):
                fail('%s: expected %s online, got %r' % (c.label, sorted(want), f))
            want.discard(f['name'])
    for i, c in enumerate(cs):
        for j, other in enumerate(cs):
            if i == j:
                continue
            r = c.request({'t': 'connect_request', 'to': names[j]})
            if r.get('t') != 'connect_result':
                fail('%s -> %s connect_request: %r' % (names[i], names[j], r))
            push = other.next_frame()
            if push.get('t') != 'connect_request' or push.get('from') != names[i]:
                fail('%s expected %s\'s connect_request, got %r' % (names[j], names[i], push))
            r = c.request({'t': 'relay_request', 'to': names[j]})
            if r.get('t') != 'relay_result' or r.get('relay') != ts[j].addr:
                fail('%s -> %s relay_request: %r, want to join at %s' % (names[i], names[j], r,
                                                                         ts[j].addr))
            if other.next_frame().get('t') != 'relay_offer':
                fail('%s got no relay_offer from %s' % (names[j], names[i]))
    cs[1].close()
    for c in (cs[0], cs[2]):
        f = c.recv()
        if f != {'t': 'presence', 'name': 'bob', 'online': False}:
            fail('%s: expected bob offline, got %r' % (c.label, f))
    stop_all((cs[0], cs[2]), ts)


if __name__ == '__main__':
    runner.main(globals())

"""test_tracker: the tracker's registry and queries, seen from real peers and
from raw protocol clients: register, list (with prefix and paging), lookup,
presence pushes, name ownership (by key, case-insensitively), ttl."""
import re
import signal

import runner
from procs import Peer, TestFailure, Tracker, fail, sqlite, start_peers
from sodium import Key
from wire import Raw, assert_serving, msg, registered_client


def test_accept_burst_all_served():
    """300 connections at once, more than the tracker takes off its backlog
    in one loop pass (listen.c, ACCEPT_BURST): every one is accepted and
    answered in its turn, and a client that was up before the burst is
    served while it lasts."""
    t = Tracker(extra_args=['--max-conns-per-addr', '0', '--rate-limit', '0'])
    early = registered_client(t, 'early')
    # Stopped, the tracker finds all of them in its backlog at once when it
    # goes on, with their hellos and early's lookup already sent.
    t.proc.signal(signal.SIGSTOP)
    try:
        raws = [Raw(t.addr, label='burst %d' % i) for i in range(300)]
        for r in raws:
            r.send({'t': 'hello', 'v': 1, 'role': 'peer'})
        early.send({'t': 'lookup', 'id': 7, 'name': 'early'})
    finally:
        t.proc.signal(signal.SIGCONT)
    if early.recv_type('lookup_result').get('id') != 7:
        fail('the client that was up before the burst got no answer')
    for r in raws:
        r.recv_type('welcome')
    for r in raws:
        r.close()
    assert_serving(t)
    t.stop()


def test_register_and_list():
    t = Tracker()
    alice, bob = start_peers(t.addr, 'alice', 'bob')
    alice.expect(r'^online bob$')
    alice.send('/list')
    alice.expect(r'^users 2: alice bob$')
    bob.send('/list')
    bob.expect(r'^users 2: alice bob$')
    bob.send('/list b')
    bob.expect(r'^users 1: bob$')
    bob.send('/list zz')
    bob.expect(r'^users 0:$')
    alice.quit()
    bob.expect(r'^offline alice$')
    bob.send('/list')
    bob.expect(r'^users 1: bob$')
    bob.quit()
    t.stop()


def test_registered_line_shows_tracker_and_observed():
    t = Tracker()
    alice = Peer('alice', t.addr)
    m = alice.expect(r'^registered alice \(tracker (\S+), seen as (\S+)\)$', 15)
    if m.group(1) != t.addr:
        fail('registered line names tracker %r, want %r' % (m.group(1), t.addr))
    if not re.match(r'^127\.0\.0\.1:\d+$', m.group(2)):
        fail('seen as %r, want 127.0.0.1:PORT' % m.group(2))
    alice.quit()
    t.stop()


def test_list_folded_order_and_first_spelling():
    t = Tracker()
    a, b, c = start_peers(t.addr, 'Émile', 'bob', 'Alice')
    c.send('/list')
    # Folded order: alice < bob < émile (é sorts after ASCII).
    c.expect(r'^users 3: Alice bob Émile$')
    c.send('/list É')
    c.expect(r'^users 1: Émile$')
    c.send('/list é')
    c.expect(r'^users 1: Émile$')
    c.send('/list A')
    c.expect(r'^users 1: Alice$')
    for p in (a, b, c):
        p.quit()
    t.stop()


def test_list_paging_raw():
    t = Tracker()
    names = ['user%02d' % i for i in range(25)]
    clients = [registered_client(t, n) for n in names]
    q = clients[0]
    seen = q.list_all(limit=7)
    if seen != sorted(names):
        fail('paged list %r, want %r' % (seen, sorted(names)))
    first = q.list(limit=7)
    if len(first['users']) != 7 or 'next' not in first:
        fail('a first page of 7 out of 25 must hold 7 users and a next cursor: %r' % first)
    last = q.list(prefix='user2', limit=100)
    if last['users'] != ['user20', 'user21', 'user22', 'user23', 'user24'] or 'next' in last:
        fail('prefix user2 gave %r' % last)
    none = q.list(prefix='nobody')
    if none.get('t') != 'list_result' or none['users'] != []:
        fail('prefix nobody gave %r' % none)
    # limit above 500 is capped, not an error; default limit applies.
    big = q.list(limit=100000)
    if big.get('t') != 'list_result' or len(big['users']) != 25:
        fail('list with a huge limit gave %r' % big)
    t.stop()


def test_lookup_raw():
    t = Tracker()
    alice = Raw(t.addr, label='alice')
    key = Key()
    alice.must_register('alice', key, endpoints=['127.0.0.1:4000', '[::1]:4000'])
    bob = registered_client(t, 'bob')
    r = bob.lookup('ALICE')
    if r.get('t') != 'lookup_result':
        fail('lookup answered %r' % r)
    if r['name'] != 'alice' or r['key'] != key.pk or r['online'] is not True:
        fail('lookup_result wrong: %r' % r)
    if sorted(r['endpoints']) != sorted(['127.0.0.1:4000', '[::1]:4000']):
        fail('lookup_result endpoints %r' % r['endpoints'])
    if r.get('observed') != alice.observed:
        fail('lookup_result observed %r, want what welcome told alice: %r' % (r.get('observed'),
                                                                            alice.observed))
    if not isinstance(r.get('last_seen'), int) or r['last_seen'] <= 0:
        fail('lookup_result last_seen %r' % r.get('last_seen'))
    # Unknown name: an error that answers this request and keeps the link.
    rid = bob.next_id
    nf = bob.lookup('nobody')
    if nf.get('t') != 'error' or nf.get('code') != 'not_found' or nf.get('id') != rid:
        fail('lookup of an unknown name answered %r' % nf)
    bob.ping()
    # Offline user: still known, online false, last endpoints, no observed.
    alice.close()
    bob.recv_type('presence')
    r = bob.lookup('alice')
    if r.get('t') != 'lookup_result' or r['online'] is not False or \
            r.get('observed') is not None:
        fail('lookup of an offline user answered %r' % r)
    if sorted(r['endpoints']) != sorted(['127.0.0.1:4000', '[::1]:4000']):
        fail('offline lookup endpoints %r' % r['endpoints'])
    t.stop()


def test_lookup_sees_operator_edits():
    """Lookups are answered from memory, yet what an operator changes with
    the sqlite3 shell while the tracker runs shows in the next lookup."""
    t = Tracker()
    alice = Raw(t.addr, label='alice')
    alice.must_register('alice', Key(), endpoints=['127.0.0.1:4000'])
    bob = registered_client(t, 'bob')
    if bob.lookup('alice').get('endpoints') != ['127.0.0.1:4000']:
        fail('first lookup of alice went wrong')
    sqlite(t.db, "UPDATE users SET endpoints = '10.1.2.3:5' WHERE folded = 'alice'")
    r = bob.lookup('alice')
    if r.get('endpoints') != ['10.1.2.3:5']:
        fail('after the operator changed alice, lookup still answered %r' % r)
    sqlite(t.db, "DELETE FROM users WHERE folded = 'alice'")
    r = bob.lookup('alice')
    if r.get('t') != 'error' or r.get('code') != 'not_found':
        fail('after the operator deleted alice, lookup answered %r' % r)
    t.stop()


def test_connect_failed_passed_on():
    """connect_failed (a failed dial back) reaches the user named in `to`,
    from the sender's registered name, its reason cleaned (control bytes
    become '?') and cut to 200 bytes on a character boundary -- but only a
    user whose register listed the feature (an older peer would close on
    the type).  To an unknown or offline user, or to oneself, it is dropped
    without an answer; a malformed one closes the sender."""
    t = Tracker()
    alice = Raw(t.addr, label='alice')
    w = alice.hello()
    if 'connect_failed' not in w.get('features', []):
        fail('welcome does not list the connect_failed feature: %r' % w)
    alice.must_register('alice', features=['connect_failed', 'something_else'])
    old = Raw(t.addr, label='old')
    old.must_register('old')   # no features: a protocol-1 peer
    bob = registered_client(t, 'bob')
    bob.send({'t': 'connect_failed', 'to': 'ALICE', 'reason': 'connection refused'})
    f = alice.next_frame()
    if f != {'t': 'connect_failed', 'from': 'bob', 'reason': 'connection refused'}:
        fail('alice got %r' % f)
    bob.send({'t': 'connect_failed', 'to': 'alice', 'reason': 'x\x00y\x1b[31m\u00e9' + '\u00e9' * 150})
    f = alice.next_frame()
    want = 'x?y?[31m' + '\u00e9' * 96
    if f.get('t') != 'connect_failed' or f['reason'] != want:
        fail('a dirty 300-byte reason arrived as %r (want %r)' % (f, want))
    for to in ('nobody', 'bob', 'carol', 'old'):
        bob.send({'t': 'connect_failed', 'to': to, 'reason': 'x'})
    for c in (bob, alice, old):  # no answer, nothing passed on, all still served
        c.send({'t': 'ping'})
        f = c.next_frame()
        if f.get('t') != 'pong':
            fail('%s got %r (want only the pong)' % (c.label, f))
    bob.send({'t': 'connect_failed', 'to': 5, 'reason': 'x'})
    bob.expect_error('bad_message')
    t.stop()


def test_connect_request_tag_comes_back():
    """A connect_request's tag goes to the target with the push, and the
    target's connect_failed tag back to the requester, so its dial can
    tell its own answer from a late one to an earlier dial.  A mistyped
    tag on the request closes the sender."""
    t = Tracker()
    alice = Raw(t.addr, label='alice')
    alice.must_register('alice', features=['connect_failed'])
    bob = Raw(t.addr, label='bob')
    bob.must_register('bob', features=['connect_failed'])
    alice.send({'t': 'connect_request', 'id': 1, 'to': 'bob', 'tag': 987654321})
    push = bob.next_frame()
    if push.get('t') != 'connect_request' or push.get('tag') != 987654321:
        fail('bob got %r (want a connect_request with tag 987654321)' % push)
    if alice.next_frame() != {'t': 'connect_result', 'id': 1}:
        fail('alice got no connect_result')
    alice.send({'t': 'connect_request', 'id': 2, 'to': 'bob'})
    if 'tag' in bob.next_frame():
        fail('an untagged connect_request was pushed with a tag')
    alice.next_frame()
    bob.send({'t': 'connect_failed', 'to': 'alice', 'reason': 'no endpoint answered',
              'tag': 987654321})
    f = alice.next_frame()
    if f != {'t': 'connect_failed', 'from': 'bob', 'reason': 'no endpoint answered',
             'tag': 987654321}:
        fail('alice got %r' % f)
    alice.send({'t': 'connect_request', 'id': 3, 'to': 'bob', 'tag': 'x'})
    alice.expect_error('bad_message')
    t.stop()


def test_reach_requests_with_id_0_are_answered():
    """0 is a request id like any other: a connect_request, relay_request
    or punch_request with id 0 for an unknown user gets not_found (an
    error frame leaves an id of 0 out) and the connection stays open."""
    t = Tracker()
    alice = Raw(t.addr, label='alice')
    alice.must_register('alice', features=['connect_failed', 'punch'])
    for kind in ('connect_request', 'relay_request', 'punch_request'):
        alice.send({'t': kind, 'id': 0, 'to': 'nobody'})
        f = alice.next_frame()
        while f == {'t': 'ping'}:  # the tracker times its punches by our round trip
            alice.send({'t': 'pong'})
            f = alice.next_frame()
        if f.get('t') != 'error' or f.get('code') != 'not_found' or 'id' in f:
            fail('%s with id 0 for nobody answered %r, want not_found without id' % (kind, f))
    alice.ping()
    t.stop()


def test_presence_push_raw():
    t = Tracker()
    a = registered_client(t, 'alice')
    b = registered_client(t, 'bob')
    p = a.recv_type('presence')
    if p.get('name') != 'bob' or p.get('online') is not True:
        fail('presence for bob coming online: %r' % p)
    b.close()
    p = a.recv_type('presence')
    if p.get('name') != 'bob' or p.get('online') is not False:
        fail('presence for bob going offline: %r' % p)
    t.stop()


def test_peer_sees_online_offline():
    t = Tracker()
    alice, bob = start_peers(t.addr, 'alice', 'bob')
    alice.expect(r'^online bob$')
    bob.kill()
    alice.expect(r'^offline bob$')
    alice.quit()
    t.stop()


def test_name_taken_by_other_key_peer():
    t = Tracker()
    first = Peer('alice', t.addr)
    first.registered()
    # Same name, another home, so another key.
    second = Peer('alice', t.addr, label='peer alice (other key)')
    second.expect(r'(?i)^error: .*taken', 15)
    second.assert_none(r'^registered ')
    # The owner is untouched.
    first.send('/list')
    first.expect(r'^users 1: alice$')
    first.assert_none(r'^tracker lost')
    first.quit()
    t.stop()


def test_name_taken_by_other_key_raw():
    t = Tracker()
    owner = registered_client(t, 'alice')
    thief = Raw(t.addr, label='thief')
    r = thief.register('alice')
    if r.get('t') != 'error' or r.get('code') != 'name_taken':
        fail('another key registering alice got %r' % r)
    thief.expect_closed()
    # The owner's connection and binding are intact.
    look = owner.lookup('alice')
    if look.get('key') != owner.key.pk or look.get('online') is not True:
        fail('after a refused claim, lookup gives %r' % look)
    t.stop()


def test_case_insensitive_names():
    t = Tracker()
    owner = registered_client(t, 'alice')
    for spelling in ('ALICE', 'Alice', 'aLiCe'):
        thief = Raw(t.addr, label='thief %s' % spelling)
        r = thief.register(spelling)
        if r.get('t') != 'error' or r.get('code') != 'name_taken':
            fail('another key registering %r once alice exists got %r' % (spelling, r))
        thief.expect_closed()
    # Accented letters fold too.
    emile = registered_client(t, 'Émile')
    thief = Raw(t.addr, label='thief éMILE')
    r = thief.register('éMILE')
    if r.get('t') != 'error' or r.get('code') != 'name_taken':
        fail('another key registering éMILE once Émile exists got %r' % r)
    thief.expect_closed()
    # The same key under another spelling is the same user, shown as first
    # registered.
    again = Raw(t.addr, label='emile again')
    r = again.register('ÉMILE', key=emile.key)
    if r.get('t') != 'registered' or r.get('name') != 'Émile':
        fail('the owner registering ÉMILE got %r (want registered as Émile)' % r)
    # That replaced the older connection.
    emile.expect_error('replaced')
    look = owner.lookup('émile')
    if look.get('name') != 'Émile':
        fail('lookup émile gave %r' % look)
    t.stop()


def test_same_key_replaces_older_connection():
    t = Tracker()
    key = Key()
    old = registered_client(t, 'alice', key)
    watcher = registered_client(t, 'bob')
    new = Raw(t.addr, label='alice new')
    r = new.register('alice', key=key)
    if r.get('t') != 'registered':
        fail('re-registering with the same key got %r' % r)
    old.expect_error('replaced')
    # alice is still online (on the new connection).
    look = watcher.lookup('alice')
    if look.get('online') is not True or look.get('observed') != new.observed:
        fail('after replacement, lookup gives %r' % look)
    users = watcher.list_all()
    if users != ['alice', 'bob']:
        fail('after replacement, list gives %r' % users)
    t.stop()


def test_bad_signature():
    t = Tracker()
    c = Raw(t.addr)
    c.hello()
    key = Key()
    wrong = key.sign_register(b'\x00' * 32, b'alice')   # not the nonce we were sent
    r = c.register('alice', key=key, sig=wrong)
    if r.get('t') != 'error' or r.get('code') != 'bad_signature':
        fail('register with a bad signature got %r' % r)
    c.expect_closed()
    # A signature by another key than the one sent.
    c = Raw(t.addr)
    c.hello()
    other = Key()
    r = c.register('alice', key=key, sig=other.sign_register(c.nonce, b'alice'))
    if r.get('t') != 'error' or r.get('code') != 'bad_signature':
        fail('register signed by another key got %r' % r)
    c.expect_closed()
    # Nothing was bound: a third key can take the name.
    registered_client(t, 'alice')
    t.stop()


def test_signature_covers_the_name():
    t = Tracker()
    c = Raw(t.addr)
    c.hello()
    key = Key()
    r = c.register('mallory', key=key, sig=key.sign_register(c.nonce, b'alice'))
    if r.get('t') != 'error' or r.get('code') != 'bad_signature':
        fail('register signed over another name got %r' % r)
    c.expect_closed()
    t.stop()


def test_nonce_is_fresh_per_connection():
    t = Tracker()
    nonces = set()
    for i in range(5):
        c = Raw(t.addr)
        nonces.add(c.hello()['nonce'])
        c.close()
    if len(nonces) != 5:
        fail('welcome nonces repeat across connections')
    t.stop()


def test_register_endpoints_limit():
    t = Tracker()
    watcher = registered_client(t, 'watcher')
    c = Raw(t.addr)
    r = c.register('alice', endpoints=['127.0.0.1:%d' % (1000 + i) for i in range(17)])
    # At most 16: refused (bad_message), or at least never stored beyond 16.
    if r.get('t') == 'error':
        if r.get('code') != 'bad_message':
            fail('17 endpoints got %r, want bad_message' % r)
        c.expect_closed()
    else:
        look = watcher.lookup('alice')
        if len(look.get('endpoints', [])) > 16:
            fail('17 endpoints accepted and stored: %r' % look)
        c.close()
    c = Raw(t.addr)
    r = c.register('bob', endpoints=['127.0.0.1:%d' % (1000 + i) for i in range(16)])
    if r.get('t') != 'registered':
        fail('16 endpoints got %r' % r)
    look = watcher.lookup('bob')
    if len(look.get('endpoints', [])) != 16:
        fail('16 endpoints stored as %r' % look)
    t.stop()


def test_ttl_drops_silent_connection():
    t = Tracker(ttl=2)
    alice = Peer('alice', t.addr)
    alice.registered()
    silent = registered_client(t, 'silent')
    alice.expect(r'^online silent$')
    # 'silent' sends nothing more: within about ttl seconds it is dropped
    # (nothing or a timeout error, then close) and the others are told.
    try:
        frames = silent.expect_closed(timeout=8)
    except TestFailure:
        fail('a connection silent for longer than ttl=2 s was not closed within 8 s')
    bad = [f for f in frames if f.get('t') == 'error' and f.get('code') != 'timeout']
    if bad:
        fail('silent connection got %r before closing, want nothing or error timeout' % frames)
    alice.expect(r'^offline silent$', 5)
    # The real peer pings every ttl/3 and stayed registered all along.
    alice.send('/list')
    alice.expect(r'^users 1: alice$')
    alice.assert_none(r'^tracker lost')
    alice.quit()
    t.stop()


def test_hello_timeout():
    """A connection that sends nothing, and one that sends half a frame, are
    closed within the 10 s handshake limit while a good client is served."""
    t = Tracker()
    idle = Raw(t.addr, label='idle')
    half = Raw(t.addr, label='half')
    hello = msg({'t': 'hello', 'v': 1, 'role': 'peer'})
    half.send_bytes(hello[:len(hello) // 2])
    good = registered_client(t, 'alice')
    for c in (idle, half):
        frames = c.expect_closed(timeout=16)
        bad = [f for f in frames if not (f.get('t') == 'error' and f.get('code') == 'timeout')]
        if bad:
            fail('%s got %r before the close (want nothing or error timeout)' % (c.label, frames))
    assert_serving(t, good)
    t.stop()


def test_sigterm_with_clients_exits_clean():
    t = Tracker()
    clients = [registered_client(t, 'u%d' % i) for i in range(5)]
    idle = Raw(t.addr, label='idle')
    alice = Peer('alice', t.addr)
    alice.registered()
    t.stop()
    alice.expect(r'^tracker lost: .+; reconnecting in \d+(\.\d+)?s$')
    for c in clients + [idle]:
        frames = c.expect_closed()
        bad = [f for f in frames if f.get('t') == 'error' and f.get('code') != 'shutdown']
        if bad:
            fail('on shutdown %s got %r (want nothing or error shutdown)' % (c.label, frames))
    alice.quit()


if __name__ == '__main__':
    runner.main(globals())

"""test_registry_pg: several trackers sharing one PostgreSQL registry
(--registry, tracker/registry_pg.c), on a real server started for each test
(pgserver.py; skipped loudly without PostgreSQL).  A user registered at one
tracker is listed and looked up at the other, a name is bound to one key
across trackers (also when two race for it), a restarted tracker marks only
its own users offline, and while PostgreSQL is down requests get
db_unavailable until the trackers reconnect by themselves."""
import os
import socket
import subprocess
import time

import runner
from pgserver import PgServer, bindir, free_port
from procs import BUILD, Peer, Proc, Tracker, connect, fail, on_cleanup, tempdir
from sodium import Key
from wire import Raw, msg


def pg_tracker(pg, label, extra=()):
    return Tracker(extra_args=['--registry', pg.url] + list(extra), label=label)


def alice_and_bob():
    """A server, two trackers on it, alice registered at the first and bob
    at the second."""
    pg = PgServer()
    t1, t2 = pg_tracker(pg, 'tracker1'), pg_tracker(pg, 'tracker2')
    alice = Raw(t1.addr, label='alice@t1')
    alice.must_register('alice')
    bob = Raw(t2.addr, label='bob@t2')
    bob.must_register('bob')
    return pg, t1, t2, alice, bob


def lock_users(pg, table='parley_users'):
    """An operator's psql holding an ACCESS EXCLUSIVE lock on table
    (every read and write of it waits) until unlock()."""
    lock = subprocess.Popen(pg.as_user + [os.path.join(pg.bin, 'psql'), '-X', '-q', '-A', '-t',
                            '-h', '127.0.0.1', '-p', str(pg.port), '-U', 'parley', '-d', 'parley'],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=pg.dir)
    on_cleanup(lock.kill)
    lock.stdin.write("BEGIN; LOCK TABLE %s IN ACCESS EXCLUSIVE MODE; SELECT 'locked';\n" % table)
    lock.stdin.flush()
    if lock.stdout.readline().strip() != 'locked':
        fail('psql did not take the lock')
    return lock


def unlock(lock):
    lock.stdin.write('COMMIT;\n')
    lock.stdin.close()
    lock.wait(10)


def must_list(client, want):
    users = client.list_all()
    if users != want:
        fail('%s: list %r, want %r' % (client.label, users, want))


def stop_all(clients, trackers):
    """Closes the clients, then stops each tracker (exit 0, no sanitizer report)."""
    for c in clients:
        c.close()
    for t in trackers:
        t.stop()


def test_pg_two_trackers_share_registry():
    pg = PgServer()
    t1, t2 = pg_tracker(pg, 'tracker1'), pg_tracker(pg, 'tracker2')
    alice = Raw(t1.addr, label='alice@t1')
    alice.must_register('alice', endpoints=('127.0.0.1:4001',))
    bob = Raw(t2.addr, label='bob@t2')
    bob.must_register('Bob', endpoints=('127.0.0.1:4002', '[::1]:4002'))
    r = bob.lookup('ALICE')
    if (r.get('t') != 'lookup_result' or r.get('name') != 'alice' or r.get('key') != alice.key.pk
            or r.get('endpoints') != ['127.0.0.1:4001'] or r.get('online') is not True):
        fail('bob at tracker 2 looked alice (tracker 1) up: %r' % r)
    r = alice.lookup('bob')
    if (r.get('name') != 'Bob' or r.get('key') != bob.key.pk
            or r.get('endpoints') != ['127.0.0.1:4002', '[::1]:4002'] or r.get('online') is not True):
        fail('alice at tracker 1 looked Bob (tracker 2) up: %r' % r)
    emile = Raw(t1.addr, label='emile@t1')
    emile.must_register('Émile')
    # Folded names in byte order (COLLATE "C"): é sorts after ASCII, as on SQLite;
    # pages of one name each walk the shared table with their cursors.
    for c in (alice, bob):
        must_list(c, ['alice', 'Bob', 'Émile'])
    if bob.list_all(limit=1) != ['alice', 'Bob', 'Émile']:
        fail('paging one name at a time at tracker 2 gave %r' % bob.list_all(limit=1))
    for prefix, want in (('A', ['alice']), ('é', ['Émile']), ('É', ['Émile']), ('bo', ['Bob']),
                         ('x', [])):
        got = bob.list(prefix=prefix)['users']
        if got != want:
            fail('prefix %r at tracker 2 listed %r, want %r' % (prefix, got, want))
    emile.close()
    t1.proc.wait_stderr(r'Émile went offline')
    # The name belongs to alice's key at every tracker.
    eve = Raw(t2.addr, label='eve@t2')
    f = eve.register('Alice')
    if f.get('t') != 'error' or f.get('code') != 'name_taken':
        fail('another key registering Alice at tracker 2 got %r, want name_taken' % f)
    # Her own key registers again at the other tracker: same record.
    again = Raw(t2.addr, label='alice@t2')
    again.must_register('ALICE', key=alice.key, endpoints=('127.0.0.1:4003',))
    if again.name != 'alice':
        fail('alice registering again at tracker 2 got name %r, want the first spelling' %
             again.name)
    r = bob.lookup('alice')
    if r.get('endpoints') != ['127.0.0.1:4003'] or r.get('online') is not True:
        fail('alice moved to tracker 2: lookup %r' % r)
    # Bob goes away: once tracker 2 committed it (alice hears of it), tracker 1
    # no longer lists him.
    bob.close()
    await_presence(alice, 'Bob', False)
    must_list(alice, ['alice'])
    r = alice.lookup('bob')
    if r.get('online') is not False or r.get('name') != 'Bob':
        fail('Bob offline, looked up at tracker 1: %r' % r)
    rows = pg.psql('SELECT name, online FROM parley_users ORDER BY folded')
    if rows.splitlines() != ['alice|t', 'Bob|f', 'Émile|f']:
        fail('parley_users holds %r' % rows)
    stop_all((alice, again, eve), (t1, t2))


def expect_presence(client, name, online, known=(), timeout=5):
    """The next frame must be the presence push of name (within a second on
    an idle machine; the timeout leaves room for a loaded one).  known:
    users the client already knew online when it registered; the
    notification of one of them may still have been on its way then, so an
    "online" push restating that is let through."""
    while True:
        f = client.recv(timeout)
        if f.get('t') == 'presence' and f.get('name') in known and f.get('online') is True:
            continue
        break
    if f.get('t') != 'presence' or f.get('name') != name or f.get('online') is not online:
        fail('%s: expected presence %s online=%s, got %r' % (client.label, name, online, f))


def await_presence(client, name, online, timeout=5):
    """Skips other pushes until the presence push of name."""
    while True:
        f = client.recv(timeout)
        if f.get('t') == 'presence' and f.get('name') == name and f.get('online') is online:
            return
        if f.get('t') not in Raw.PUSHES:
            fail('%s: expected presence %s online=%s, got %r' % (client.label, name, online, f))


def test_pg_presence_crosses_trackers():
    """LISTEN/NOTIFY: a user coming or going at one tracker is pushed to the
    peers of the other, and so are the users a restarted tracker marks
    offline."""
    pg, t1, t2, alice, bob = alice_and_bob()
    expect_presence(alice, 'bob', True)
    carol = Raw(t1.addr, label='carol@t1')
    carol.must_register('carol')
    expect_presence(alice, 'carol', True)  # tracker 1's own push, not twice
    expect_presence(bob, 'carol', True, known=('alice',))
    carol.close()
    expect_presence(alice, 'carol', False)
    expect_presence(bob, 'carol', False)
    bob.close()
    expect_presence(alice, 'bob', False)
    alice.expect_silence(0.5)  # each change once
    dave = Raw(t2.addr, label='dave@t2')
    dave.must_register('dave')
    expect_presence(alice, 'dave', True)
    t1.kill()
    alice.close()
    t1.start(listen=list(t1.addrs))
    expect_presence(dave, 'alice', False, known=('alice',))  # tracker 1 marked its own offline at start
    stop_all((dave,), (t1, t2))


def test_pg_remote_presence_only_to_subscribers():
    """A change at another tracker reaches only this tracker's subscribers
    of the name (and its sessions in all mode, an older peer here); the
    subscribed answer knows who is online at the other tracker."""
    pg, t1, t2, alice, bob = alice_and_bob()  # alice: no features, so all mode
    expect_presence(alice, 'bob', True)
    sub = ['connect_failed', 'mailbox', 'subscribe']
    fan = Raw(t1.addr, label='fan@t1')
    fan.must_register('fan', features=sub)
    other = Raw(t1.addr, label='other@t1')
    other.must_register('other', features=sub)
    r = fan.request({'t': 'subscribe', 'names': ['carol', 'BOB']})
    if r.get('t') != 'subscribed' or r.get('online') != ['bob'] or r.get('count') != 2:
        fail('fan subscribed at tracker 1 to bob of tracker 2: %r' % r)
    other.request({'t': 'subscribe', 'names': ['dave']})
    carol = Raw(t2.addr, label='carol@t2')
    carol.must_register('carol')
    await_presence(fan, 'carol', True)
    await_presence(alice, 'carol', True)
    other.send({'t': 'ping'})
    f = other.recv()
    if f.get('t') != 'pong':
        fail('other (subscribed to dave only) got %r before its pong' % f)
    carol.close()
    await_presence(fan, 'carol', False)
    stop_all((alice, bob, fan, other), (t1, t2))


def test_pg_subscribe_many_names():
    """A subscribe of many names on a shared registry: the answer lists, in
    the request's order and once each, those online here and those online
    at the other tracker (one statement for all of them, answered without
    the loop waiting), and none of the others."""
    pg, t1, t2, alice, bob = alice_and_bob()
    carol = Raw(t2.addr, label='carol@t2')
    carol.must_register('Carol')
    fan = Raw(t1.addr, label='fan@t1')
    fan.must_register('fan', features=['connect_failed', 'mailbox', 'subscribe'])
    names = ['n%d' % i for i in range(300)] + ['carol', 'alice', 'BOB', 'bob', 'nobody']
    names += ['m%d' % i for i in range(300)]
    r = fan.request({'t': 'subscribe', 'names': names})
    if r.get('t') != 'subscribed' or r.get('count') != 604:
        fail('subscribe of %d names answered %r' % (len(names), r))
    if r.get('online') != ['Carol', 'alice', 'bob']:
        fail('subscribed lists %r online, want Carol (tracker 2), alice (here), bob '
             '(tracker 2), in the request\'s order' % r.get('online'))
    fan.ping()  # the tracker still answers
    stop_all((alice, bob, carol, fan), (t1, t2))


def test_pg_real_peers_chat_across_trackers():
    """The real client: alice at tracker 1 and bob at tracker 2 see each
    other come online, list each other, dial and chat directly."""
    pg = PgServer()
    t1, t2 = pg_tracker(pg, 'tracker1'), pg_tracker(pg, 'tracker2')
    alice = Peer('alice', t1.addr)
    alice.registered()
    bob = Peer('bob', t2.addr)
    bob.registered()
    alice.expect(r'^online bob$')
    bob.send('/list')
    bob.expect(r'^users 2: alice bob$')
    connect(bob, alice)
    bob.send('/msg alice hello across trackers')
    alice.expect(r'^msg bob: hello across trackers$')
    bob.expect(r'^delivered alice #1$')
    alice.send('/msg bob and back')
    bob.expect(r'^msg alice: and back$')
    alice.expect(r'^delivered bob #1$')
    bob.quit()
    alice.expect(r'^offline bob$')
    alice.quit()
    stop_all((), (t1, t2))


def test_pg_lease_of_a_dead_tracker_runs_out():
    """A tracker killed for good: within its --ttl (its lease) the other
    trackers mark its users offline, and their peers hear of it."""
    pg = PgServer()
    t1 = pg_tracker(pg, 'tracker1', ['--ttl', '2'])
    t2 = pg_tracker(pg, 'tracker2')  # bob may stay silent for longer than 2 s
    alice = Raw(t1.addr, label='alice@t1')
    alice.must_register('alice')
    bob = Raw(t2.addr, label='bob@t2')
    bob.must_register('bob')
    must_list(bob, ['alice', 'bob'])
    t0 = time.monotonic()
    t1.kill()
    alice.close()
    await_presence(bob, 'alice', False, timeout=10)
    took = time.monotonic() - t0
    if took > 4.5:
        fail('alice went offline %.1f s after her tracker died; its lease is 2 s' % took)
    t2.proc.wait_stderr(r'marked offline 1 users of trackers whose lease ran out')
    must_list(bob, ['bob'])
    stop_all((bob,), (t2,))


def test_pg_name_race():
    """Two trackers bind one name to two keys at once: exactly one wins."""
    pg = PgServer()
    t1, t2 = pg_tracker(pg, 'tracker1'), pg_tracker(pg, 'tracker2')
    for round_ in range(5):
        name = 'race%d' % round_
        a, b = Raw(t1.addr, label='a@t1'), Raw(t2.addr, label='b@t2')
        for c in (a, b):
            c.hello()
        ka, kb = Key(), Key()
        for c, k in ((a, ka), (b, kb)):
            c.key = k
            c.send({'t': 'register', 'name': name, 'key': k.pk,
                    'sig': k.sign_register(c.nonce, name.encode()), 'endpoints': ['127.0.0.1:9']})
        fa, fb = a.recv_skip_presence(), b.recv_skip_presence()
        answers = sorted('%s:%s' % (f.get('t'), f.get('code', '')) for f in (fa, fb))
        if answers != ['error:name_taken', 'registered:']:
            fail('round %d: the two registrations of %s got %r, want one registered and one '
                 'name_taken' % (round_, name, answers))
        winner = a if fa.get('t') == 'registered' else b
        row = pg.psql("SELECT encode(key, 'hex') FROM parley_users WHERE folded = '%s'" % name)
        if row != winner.key.pk.hex():
            fail('round %d: the stored key is not the winner\'s' % round_)
        a.close()
        b.close()
    stop_all((), (t1, t2))


def test_pg_lookalike_rules_across_trackers():
    """The look-alike rules of a new name (docs/PROTOCOL.md, "Usernames")
    hold across trackers, decided by the registration's own statement: a
    name whose skeleton matches a name another key holds at another
    tracker is name_confusable naming it, a name mixing scripts is
    bad_name, the owner re-registers freely anywhere, and a name stored
    before the rules (written straight into the table) keeps working for
    its key.  Two look-alikes of two keys in one batch: the second is
    refused."""
    from test_tracker_lookalike import CYR_A, refused
    pg = PgServer()
    t1, t2 = pg_tracker(pg, 'tracker1'), pg_tracker(pg, 'tracker2')
    key = Key()
    owner = Raw(t1.addr, label='alice@t1')
    owner.must_register('alice', key=key)
    for t in (t1, t2):
        msg = refused(t, CYR_A + 'lice', 'name_confusable', 'looks like alice')
        if CYR_A + 'lice' not in msg:
            fail('the message should name the refused name: %r' % msg)
    refused(t2, 'ALICE', 'name_taken')
    refused(t2, 'pa' + CYR_A + 'l', 'bad_name', 'mixes scripts')
    again = Raw(t2.addr, label='alice@t2')
    r = again.register('Alice', key=key)
    if r.get('t') != 'registered' or r.get('name') != 'alice':
        fail('the owner registering Alice again at tracker 2 got %r' % r)
    # Stored before the rules: a mixed-script name with no skeleton.
    old = Key()
    pg.psql("INSERT INTO parley_users (folded, name, key, created) VALUES ('m%sx', 'm%sx', "
            "decode('%s', 'hex'), 1)" % (CYR_A, CYR_A, old.pk.hex()))
    c = Raw(t2.addr, label='old name@t2')
    r = c.register('m' + CYR_A + 'x', key=old)
    if r.get('t') != 'registered':
        fail('a name stored before the rules, registered by its key, got %r' % r)
    # Two keys, two look-alikes, sent together: they land in one batch,
    # whose statements run in order, so the second sees the first.
    a, b = Raw(t1.addr, label='bob@t1'), Raw(t1.addr, label='cyrillic bob@t1')
    for x in (a, b):
        x.hello()
    for x, name in ((a, 'bob'), (b, 'b\u043eb')):  # Cyrillic o
        x.key = Key()
        x.send({'t': 'register', 'name': name, 'key': x.key.pk,
                'sig': x.key.sign_register(x.nonce, name.encode()), 'endpoints': ['127.0.0.1:9']})
    answers = sorted('%s:%s' % (f.get('t'), f.get('code', ''))
                     for f in (a.recv_skip_presence(), b.recv_skip_presence()))
    if answers != ['error:name_confusable', 'registered:']:
        fail('two look-alikes registered at once got %r, want one registered and one '
             'name_confusable' % answers)
    stop_all((owner, again, c, a, b), (t1, t2))


def test_pg_tracker_restart_marks_only_its_own_offline():
    pg, t1, t2, alice, bob = alice_and_bob()
    must_list(bob, ['alice', 'bob'])
    t1.kill()  # SIGKILL: no offline written for alice
    alice.close()
    must_list(bob, ['alice', 'bob'])  # until tracker 1 is back or its 60 s lease runs out
    t1.start(listen=list(t1.addrs))
    t1.proc.wait_stderr(r'marked offline the users this tracker had left online: 1$')
    must_list(bob, ['bob'])
    bob.ping()
    carol = Raw(t1.addr, label='carol@t1')
    carol.must_register('carol')
    must_list(carol, ['bob', 'carol'])
    stop_all((bob, carol), (t1, t2))


def test_pg_down_answers_db_unavailable_then_reconnects():
    pg = PgServer()
    t1 = pg_tracker(pg, 'tracker1')
    alice = Raw(t1.addr, label='alice')
    alice.must_register('alice')
    carol = Raw(t1.addr, label='carol')
    carol.must_register('carol')
    mark = len(t1.log_since())
    pg.stop()
    t1.proc.wait_stderr(r'lost the PostgreSQL registry', start=mark)
    carol.close()  # her offline cannot be written now: it is owed
    t1.proc.wait_stderr(r'carol went offline', start=mark)
    r = alice.lookup('alice')
    if r.get('t') != 'error' or r.get('code') != 'db_unavailable' or r.get('id') != 1:
        fail('lookup while PostgreSQL is down: %r, want error db_unavailable for id 1' % r)
    r = alice.list()
    if r.get('t') != 'error' or r.get('code') != 'db_unavailable':
        fail('list while PostgreSQL is down: %r' % r)
    alice.ping()  # the connection stays open
    bob = Raw(t1.addr, label='bob')
    bob.hello()
    f = bob.register('bob')
    if f.get('t') != 'error' or f.get('code') != 'db_unavailable':
        fail('register while PostgreSQL is down: %r, want db_unavailable' % f)
    mark = len(t1.log_since())
    pg.start()
    t1.proc.wait_stderr(r'reconnected to the PostgreSQL registry', timeout=15, start=mark)
    t1.proc.wait_stderr(r'recorded 1 user who went offline while the PostgreSQL registry was away',
                        start=mark)
    r = alice.lookup('alice')
    if r.get('t') != 'lookup_result' or r.get('key') != alice.key.pk:
        fail('lookup after PostgreSQL came back: %r' % r)
    bob = Raw(t1.addr, label='bob again')
    bob.must_register('bob')
    must_list(alice, ['alice', 'bob'])
    stop_all((alice, bob), (t1,))


def test_pg_silent_server_does_not_stall_the_tracker():
    """While the registry's port answers TCP but says nothing (a hung server,
    a half-dead proxy), each reconnection attempt waits on the loop for its
    deadline instead of blocking it: the tracker keeps answering meanwhile."""
    pg = PgServer()
    t1 = pg_tracker(pg, 'tracker1', ['--rate-limit', '0'])  # pings back to back
    alice = Raw(t1.addr, label='alice')
    alice.must_register('alice')
    mark = len(t1.log_since())
    pg.stop()
    t1.proc.wait_stderr(r'lost the PostgreSQL registry', start=mark)
    silent = socket.socket()
    silent.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    silent.bind(('127.0.0.1', pg.port))
    silent.listen(64)  # accepts in the kernel, never reads nor answers
    on_cleanup(silent.close)
    worst, timeouts, deadline = 0.0, 0, time.monotonic() + 30
    while timeouts < 2:
        if time.monotonic() > deadline:
            fail('the tracker never gave up a connection attempt to the silent server')
        t0 = time.monotonic()
        alice.ping()
        worst = max(worst, time.monotonic() - t0)
        timeouts = sum('connection timed out' in l for l in t1.log_since(mark))
    if worst > 0.5:
        fail('a ping took %.2f s while the tracker tried the silent server: the loop '
             'blocked' % worst)
    silent.close()
    mark = len(t1.log_since())
    pg.start()
    t1.proc.wait_stderr(r'reconnected to the PostgreSQL registry', timeout=15, start=mark)
    r = alice.lookup('alice')
    if r.get('t') != 'lookup_result':
        fail('lookup after the server came back: %r' % r)
    stop_all((alice,), (t1,))


def test_pg_pipelined_lookups_in_one_batch():
    """Lookups sent back to back land in one batch, answered by one
    statement (Q_GET_MANY): each answer goes to its own id, a name asked
    twice gets its record twice, a missing name is not_found, and a
    registration in the same batch is seen by the lookups after it."""
    pg = PgServer()
    t1, t2 = pg_tracker(pg, 'tracker1', ['--rate-limit', '0']), pg_tracker(pg, 'tracker2')
    alice = Raw(t1.addr, label='alice@t1')
    alice.must_register('alice', endpoints=('127.0.0.1:4001',))
    bob = Raw(t2.addr, label='bob@t2')
    bob.must_register('Bob', endpoints=('127.0.0.1:4002',))
    asks = ['bob', 'nobody', 'ALICE', 'bob', 'alice', 'carol']
    for rounds in range(3):
        carol = Raw(t1.addr, label='carol@t1')
        carol.hello()
        carol.key = Key()
        frames = b''
        for i, name in enumerate(asks):
            frames += msg({'t': 'lookup', 'id': 100 + i, 'name': name})
        # carol's register reaches the tracker in the same read as the
        # lookups: the last lookup of carol is in the batch after it or the next.
        alice.send_bytes(frames)
        got = {}
        while len(got) < len(asks):
            f = alice.recv_skip_presence()
            if f.get('id') in got or not 100 <= f.get('id', 0) < 100 + len(asks):
                fail('round %d: an answer to no request or twice: %r' % (rounds, f))
            got[f['id']] = f
        for i, name in enumerate(asks):
            f = got[100 + i]
            if name.lower() == 'bob':
                if (f.get('t') != 'lookup_result' or f.get('name') != 'Bob'
                        or f.get('endpoints') != ['127.0.0.1:4002'] or f.get('online') is not True):
                    fail('round %d: lookup %d of %s answered %r' % (rounds, i, name, f))
            elif name.lower() == 'alice':
                if f.get('t') != 'lookup_result' or f.get('name') != 'alice' \
                        or f.get('key') != alice.key.pk:
                    fail('round %d: lookup %d of %s answered %r' % (rounds, i, name, f))
            elif f.get('t') != 'error' or f.get('code') != 'not_found' or name not in f.get('msg', ''):
                fail('round %d: lookup %d of %s answered %r, want not_found' % (rounds, i, name, f))
        carol.close()
    # A registration then a lookup of it, sent together by two clients.
    dave = Raw(t1.addr, label='dave@t1')
    dave.hello()
    dave.key = Key()
    dave.send({'t': 'register', 'name': 'dave', 'key': dave.key.pk,
               'sig': dave.key.sign_register(dave.nonce, b'dave'), 'endpoints': ['127.0.0.1:9']})
    if dave.recv_skip_presence().get('t') != 'registered':
        fail('dave did not register')
    alice.send_bytes(msg({'t': 'lookup', 'id': 1, 'name': 'dave'}) +
                     msg({'t': 'lookup', 'id': 2, 'name': 'alice'}))
    ans = {f['id']: f for f in (alice.recv_skip_presence(), alice.recv_skip_presence())}
    if ans[1].get('name') != 'dave' or ans[1].get('online') is not True or ans[2].get('name') != 'alice':
        fail('lookups right after a registration answered %r' % ans)
    stop_all((alice, bob, dave), (t1, t2))


def test_pg_commit_in_flight_does_not_stall_the_tracker():
    """A batch of writes waits for PostgreSQL on the watch, not on the loop:
    while an operator's transaction holds a lock on the users table, a
    registration's batch waits for it, the tracker goes on answering
    others, a second registration queues behind it, and both are answered
    once the lock goes."""
    pg = PgServer()
    t1 = pg_tracker(pg, 'tracker1', ['--rate-limit', '0'])
    alice = Raw(t1.addr, label='alice')
    alice.must_register('alice')
    lock = lock_users(pg)
    waiting = ("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
               "AND query LIKE '%parley_users%'")
    clients = []
    for name in ('bob', 'carol'):
        c = Raw(t1.addr, label=name)
        c.hello()
        c.key = Key()
        c.send({'t': 'register', 'name': name, 'key': c.key.pk,
                'sig': c.key.sign_register(c.nonce, name.encode()), 'endpoints': ['127.0.0.1:9']})
        clients.append(c)
        if name == 'bob':  # carol's comes while bob's batch is in flight
            deadline = time.monotonic() + 10
            while pg.psql(waiting) != '1':
                if time.monotonic() > deadline:
                    fail('bob\'s registration never reached the locked table')
    t0 = time.monotonic()
    for _ in range(20):
        alice.ping()
    took = time.monotonic() - t0
    if pg.psql(waiting) != '1':
        fail('the batch stopped waiting for the lock before it was released')
    if took > 0.5:
        fail('20 pings took %.2f s while a batch waited for the lock' % took)
    unlock(lock)
    for c in clients:
        f = c.recv_skip_presence()
        if f.get('t') != 'registered':
            fail('%s: register answered %r once the lock went' % (c.label, f))
    must_list(alice, ['alice', 'bob', 'carol'])
    stop_all([alice] + clients, (t1,))


def test_pg_stop_records_every_user_offline():
    """A tracker stopping with more users online than one batch holds
    (RPG_BATCH_MAX) writes every one of them offline before it exits."""
    pg = PgServer()
    t1 = pg_tracker(pg, 'tracker1', ['--rate-limit', '0', '--max-conns-per-addr', '0'])
    clients = []
    for i in range(700):  # more than the 4 rounds of 128 an older close made
        c = Raw(t1.addr, label='u%d' % i)
        c.must_register('u%d' % i)
        clients.append(c)
    if pg.psql('SELECT count(*) FROM parley_users WHERE online') != '700':
        fail('not all 700 online in PostgreSQL')
    t1.stop()
    left = pg.psql('SELECT count(*) FROM parley_users WHERE online')
    if left != '0':
        fail('%s users still online in PostgreSQL after their tracker stopped' % left)
    for c in clients:
        c.close()


def test_pg_db_uri_is_the_registry():
    """--db postgresql://... is --registry's other spelling (the issue's);
    a --db PATH given too stays the tracker's own SQLite file."""
    pg = PgServer()
    t1 = Tracker(extra_args=['--db', pg.url], label='tracker1')  # after the harness's --db PATH
    t2 = pg_tracker(pg, 'tracker2')
    t1.proc.wait_stderr(r'ready \(database .*tracker\.db, users in PostgreSQL')
    alice = Raw(t1.addr, label='alice@t1')
    alice.must_register('alice')
    bob = Raw(t2.addr, label='bob@t2')
    bob.must_register('bob')
    must_list(bob, ['alice', 'bob'])
    if not os.path.exists(t1.db):
        fail('--db PATH beside --db URI: no SQLite file at %s' % t1.db)
    stop_all((alice, bob), (t1, t2))


def test_pg_two_different_registries_refused():
    """--db URI and --registry naming two databases: a usage error."""
    d = tempdir()
    p = Proc('tracker', [os.path.join(BUILD, 'parley-tracker'), '--db',
                         'postgresql://parley@127.0.0.1:5432/a', '--registry',
                         'postgresql://parley@127.0.0.1:5432/b'], cwd=d, stdin=False)
    p.wait_stderr(r'give one PostgreSQL registry')
    if p.wait_exit() != 2:
        fail('two different registries must be a usage error (status 2)')
    if os.listdir(d):
        fail('the refused tracker left %r behind' % os.listdir(d))


def test_pg_release_refused_with_the_sql_to_run():
    d = tempdir()
    p = Proc('tracker', [os.path.join(BUILD, 'parley-tracker'), '--release', 'alice', '--db',
                         'postgresql://parley@127.0.0.1:5432/parley'], cwd=d, stdin=False)
    p.wait_stderr(r'--release does not work with a PostgreSQL registry yet; .*DELETE FROM '
                  r'parley_mail .*DELETE FROM parley_users')
    if p.wait_exit() != 2:
        fail('--release with a PostgreSQL registry must be a usage error (status 2)')


def test_pg_unreachable_at_start():
    """No server at the URI: the tracker says so and exits 1."""
    bindir()  # skip where PostgreSQL is not installed, like the others
    d = tempdir()
    p = Proc('tracker', [os.path.join(BUILD, 'parley-tracker'), '--listen', '127.0.0.1:0',
                         '--db', os.path.join(d, 't.db'), '--registry',
                         'postgresql://parley@127.0.0.1:%d/parley' % free_port()], cwd=d,
             stdin=False)
    p.wait_stderr(r'cannot use the PostgreSQL registry given with --registry: .*refused')
    if p.wait_exit() != 1:
        fail('a tracker whose registry cannot be reached must exit 1')
    p.wait_output_done()
    p.assert_clean()


if __name__ == '__main__':
    runner.main(globals())

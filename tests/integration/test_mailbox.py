"""test_mailbox: the tracker's offline mailbox (docs/PROTOCOL.md, "Mailbox"),
driven by raw protocol clients against the real tracker: mail_put to an
offline user is stored (answered after the commit) and pushed when the
recipient registers with the "mailbox" feature, from/key/box intact;
mail_ack deletes it and gives the sender a receipt, at once or at its next
registration; receipt_ack deletes that; unacknowledged mail comes again on
the next registration; puts are idempotent; the error codes and their
order; the window of 32; every limit; expiry by --mail-ttl; kill -9 right
after mail_stored; malformed frames; what the database holds."""
import os
import subprocess
import time

import runner
from procs import BUILD, Tracker, fail, sqlite, tempdir
from sodium import Key
from wire import Raw, assert_serving, msg, registered_client

WINDOW = 32
MAIL_PUSHES = ('mail', 'receipt')


def mail_client(t, name, key=None, features=('mailbox',), label=None):
    """A client registered as name whose register lists features."""
    c = Raw(t.addr, label=label or 'raw %s' % name)
    w = c.hello()
    if 'mailbox' not in w.get('features', []):
        fail('welcome does not list the mailbox feature: %r' % w)
    c.must_register(name, key, features=list(features) if features is not None else None)
    return c


def offline_user(t, name):
    """Registers name once and leaves: a user the tracker knows, offline."""
    c = registered_client(t, name)
    key = c.key
    c.close()
    return key


def alice_and_offline_bob(t):
    """alice online with the feature, bob known and offline: (alice, bob's key)."""
    bob_key = offline_user(t, 'bob')
    return mail_client(t, 'alice'), bob_key


def expect(c, t, timeout=10):
    f = c.next_frame(timeout)
    if f.get('t') != t:
        fail('%s: expected %r, got %r' % (c.label, t, f))
    return f


def nothing_more(c):
    """Nothing is pushed before the answer to a ping: the tracker answers
    in order, so whatever it had to push would have come first."""
    c.send({'t': 'ping'})
    f = c.next_frame()
    if f.get('t') != 'pong':
        fail('%s: expected nothing before the pong, got %r' % (c.label, f))


def put(c, to, box, mid):
    """Sends mail_put and returns its answer (mail_stored or an error)."""
    c.send({'t': 'mail_put', 'id': mid, 'to': to, 'box': box})
    f = c.next_frame()
    if f.get('t') in MAIL_PUSHES:
        fail('%s: a push %r came before the answer to mail_put %d' % (c.label, f, mid))
    if f.get('id') != mid:
        fail('%s: the answer to mail_put %d has id %r: %r' % (c.label, mid, f.get('id'), f))
    return f


def stored(c, to, box, mid, want_to=None):
    f = put(c, to, box, mid)
    if f != {'t': 'mail_stored', 'id': mid, 'to': want_to or to}:
        fail('%s: mail_put %d to %s answered %r' % (c.label, mid, to, f))
    return f


def refused(c, to, box, mid, code, *words):
    f = put(c, to, box, mid)
    if f.get('t') != 'error' or f.get('code') != code:
        fail('%s: mail_put %d to %s answered %r, want error %s' % (c.label, mid, to, f, code))
    for w in words:
        if w not in f.get('msg', ''):
            fail('%s: error %s should say %r: %r' % (c.label, code, w, f))
    return f


def db_count(t, table, where='1'):
    return int(sqlite(t.db, 'SELECT count(*) FROM %s WHERE %s' % (table, where))[0])


def drained(t, table, timeout=5):
    """Waits for table to empty: acknowledgements carry no answer, so the
    last ones' batch may still be committing when the client is done."""
    deadline = time.monotonic() + timeout
    while db_count(t, table) and time.monotonic() < deadline:
        time.sleep(0.02)
    return db_count(t, table) == 0


def test_put_deliver_ack_receipt():
    t = Tracker()
    bob_key = Key()
    bob = Raw(t.addr, label='Bob first')
    bob.must_register('Bob', bob_key)
    bob.close()
    alice = mail_client(t, 'alice')
    box = os.urandom(300)
    before = int(time.time())
    stored(alice, 'BOB', box, 7, want_to='Bob')   # any spelling; answered as stored
    bob = mail_client(t, 'bob', bob_key, label='Bob again')
    m = expect(bob, 'mail')
    if set(m) != {'t', 'mid', 'from', 'key', 'ts', 'box'}:
        fail('mail push fields: %r' % m)
    if m['from'] != 'alice' or m['key'] != alice.key.pk or m['box'] != box:
        fail('mail push altered what alice stored: %r' % m)
    if not isinstance(m['mid'], int) or m['mid'] <= 0:
        fail('mail mid %r' % m['mid'])
    if not before - 1 <= m['ts'] <= int(time.time()) + 1:
        fail('mail ts %r is not when it was stored (%d)' % (m['ts'], before))
    nothing_more(bob)
    bob.send({'t': 'mail_ack', 'mid': m['mid']})
    r = expect(alice, 'receipt')
    if set(r) != {'t', 'rid', 'to', 'id', 'status'} or r['to'] != 'Bob' or r['id'] != 7 or \
            r['status'] != 'delivered' or not isinstance(r['rid'], int) or r['rid'] <= 0:
        fail('alice got the receipt %r' % r)
    if db_count(t, 'mail') != 0:
        fail('the acknowledged mail is still stored: %r' % sqlite(t.db, 'SELECT mid FROM mail'))
    alice.send({'t': 'receipt_ack', 'rid': r['rid']})
    nothing_more(alice)
    nothing_more(bob)
    if db_count(t, 'receipts') != 0:
        fail('the acknowledged receipt is still stored')
    t.stop()


def test_push_while_online_and_feature_gating():
    """A recipient online with the feature gets new mail at once; one whose
    register did not list it gets no push, and the mail waits for a
    registration that does."""
    t = Tracker()
    alice = mail_client(t, 'alice')
    bob = mail_client(t, 'bob')
    old = mail_client(t, 'old', features=None)
    stored(alice, 'bob', b'one', 1)
    m = expect(bob, 'mail')
    if m['box'] != b'one' or m['from'] != 'alice':
        fail('bob got %r' % m)
    stored(alice, 'old', b'two', 2)
    nothing_more(old)
    old_key = old.key
    old.close()
    again = mail_client(t, 'old', old_key, label='old with the feature')
    m = expect(again, 'mail')
    if m['box'] != b'two':
        fail('old got %r' % m)
    t.stop()


def test_receipt_waits_for_offline_sender_and_ack_deletes_it():
    t = Tracker()
    alice, bob_key = alice_and_offline_bob(t)
    alice_key = alice.key
    stored(alice, 'bob', b'hello', 11)
    stored(alice, 'bob', b'again', 12)
    alice.close()
    bob = mail_client(t, 'bob', bob_key)
    m1, m2 = expect(bob, 'mail'), expect(bob, 'mail')
    if (m1['box'], m2['box']) != (b'hello', b'again') or m1['mid'] >= m2['mid']:
        fail('bob got %r then %r (want oldest first)' % (m1, m2))
    bob.send({'t': 'mail_ack', 'mid': m1['mid']})
    bob.send({'t': 'mail_ack', 'mid': m2['mid'], 'ok': False})  # refused: forged, say
    nothing_more(bob)
    alice = mail_client(t, 'alice', alice_key, label='alice again')
    r1, r2 = expect(alice, 'receipt'), expect(alice, 'receipt')
    if (r1['id'], r1['status'], r2['id'], r2['status']) != (11, 'delivered', 12, 'refused'):
        fail('alice got the receipts %r and %r' % (r1, r2))
    alice.send({'t': 'receipt_ack', 'rid': r1['rid']})
    nothing_more(alice)
    alice.close()
    # The acknowledged receipt is gone; the other comes again.
    alice = mail_client(t, 'alice', alice_key, label='alice third')
    r = expect(alice, 'receipt')
    if r != r2:
        fail('alice third got %r, want only the unacknowledged %r' % (r, r2))
    nothing_more(alice)
    t.stop()


def test_unacked_mail_resent_on_next_registration():
    t = Tracker()
    alice, bob_key = alice_and_offline_bob(t)
    stored(alice, 'bob', b'keep me', 5)
    bob = mail_client(t, 'bob', bob_key)
    m = expect(bob, 'mail')
    bob.close()  # never acknowledged
    bob = mail_client(t, 'bob', bob_key, label='bob again')
    again = expect(bob, 'mail')
    if again != m:
        fail('the unacknowledged mail came back as %r, want %r' % (again, m))
    # Acknowledging someone else's mid, an unknown one, or twice: ignored.
    carol_key = offline_user(t, 'carol')
    stored(alice, 'carol', b'for carol', 6)
    carol_mid = int(sqlite(t.db, "SELECT mid FROM mail WHERE recipient = 'carol'")[0])
    bob.send({'t': 'mail_ack', 'mid': carol_mid})
    bob.send({'t': 'mail_ack', 'mid': 999999})
    bob.send({'t': 'receipt_ack', 'rid': 424242})
    nothing_more(bob)
    if db_count(t, 'mail', "recipient = 'carol'") != 1:
        fail("bob's ack of carol's mail deleted it")
    bob.send({'t': 'mail_ack', 'mid': m['mid']})
    bob.send({'t': 'mail_ack', 'mid': m['mid']})
    expect(alice, 'receipt')
    nothing_more(alice)
    nothing_more(bob)
    carol = mail_client(t, 'carol', carol_key)
    if expect(carol, 'mail')['box'] != b'for carol':
        fail('carol lost her mail')
    t.stop()


def test_idempotent_put():
    t = Tracker()
    alice, bob_key = alice_and_offline_bob(t)
    stored(alice, 'bob', b'once', 99)
    stored(alice, 'bob', b'once', 99)            # the sender restarted and resends
    # Pipelined in one loop pass: answered after the one commit, stored once.
    for _ in range(3):
        alice.send({'t': 'mail_put', 'id': 100, 'to': 'bob', 'box': b'twice'})
    for _ in range(3):
        f = alice.next_frame()
        if f != {'t': 'mail_stored', 'id': 100, 'to': 'bob'}:
            fail('a pipelined resend got %r' % f)
    if db_count(t, 'mail') != 2:
        fail('resends stored copies: %r' % sqlite(t.db, 'SELECT mid, msg_id FROM mail'))
    bob = mail_client(t, 'bob', bob_key)
    a, b = expect(bob, 'mail'), expect(bob, 'mail')
    nothing_more(bob)
    bob.send({'t': 'mail_ack', 'mid': a['mid']})
    bob.send({'t': 'mail_ack', 'mid': b['mid']})
    expect(alice, 'receipt')
    expect(alice, 'receipt')
    # Delivered, its receipt not acknowledged yet: a resend still stores nothing.
    stored(alice, 'bob', b'once', 99)
    nothing_more(bob)
    if db_count(t, 'mail') != 0:
        fail('a resend after delivery stored a copy')
    # Another sender may use the same id.
    carol = mail_client(t, 'carol')
    stored(carol, 'bob', b'from carol', 99)
    if expect(bob, 'mail')['from'] != 'carol':
        fail('carol\'s mail with alice\'s id did not arrive')
    t.stop()


def test_put_errors_in_order():
    t = Tracker()
    offline_user(t, 'bob')
    early = Raw(t.addr, label='early')
    early.hello()
    f = put(early, 'bob', b'x', 3)
    if f.get('t') != 'error' or f.get('code') != 'not_registered':
        fail('mail_put before register answered %r' % f)
    early.ping()    # still open
    alice = mail_client(t, 'alice')
    refused(alice, 'ALICE', b'x', 4, 'bad_name', 'own name')
    refused(alice, 'bad name', b'x', 5, 'bad_name')
    refused(alice, 'x' * 40, b'x', 6, 'bad_name')
    refused(alice, 'nobody', b'x', 7, 'not_found', 'nobody')
    stored(alice, 'bob', b'x', 8)
    alice.ping()
    if db_count(t, 'mail') != 1:
        fail('refused puts stored something')
    t.stop()


def test_window_of_32():
    t = Tracker(extra_args=['--rate-limit', '0'])
    alice, bob_key = alice_and_offline_bob(t)
    for i in range(100):
        alice.send({'t': 'mail_put', 'id': 1000 + i, 'to': 'bob', 'box': b'n%03d' % i})
    for i in range(100):
        f = alice.next_frame()
        if f != {'t': 'mail_stored', 'id': 1000 + i, 'to': 'bob'}:
            fail('put %d answered %r' % (i, f))
    bob = mail_client(t, 'bob', bob_key)
    got = [expect(bob, 'mail') for _ in range(WINDOW)]
    nothing_more(bob)        # the window is full: nothing more until an ack
    # Each ack lets exactly one more in, oldest first.
    for i in range(100 - WINDOW):
        bob.send({'t': 'mail_ack', 'mid': got[i]['mid']})
        got.append(expect(bob, 'mail'))
        nothing_more(bob)
    for m in got[100 - WINDOW:]:
        bob.send({'t': 'mail_ack', 'mid': m['mid']})
    if [m['box'] for m in got] != [b'n%03d' % i for i in range(100)]:
        fail('mail arrived out of order: %r' % [m['box'] for m in got])
    # alice is online: her receipts come in a window of their own.
    receipts = []
    for _ in range(100):
        r = expect(alice, 'receipt')
        receipts.append(r['id'])
        alice.send({'t': 'receipt_ack', 'rid': r['rid']})
    if sorted(receipts) != list(range(1000, 1100)):
        fail('alice got receipts for %r' % sorted(receipts))
    nothing_more(alice)
    nothing_more(bob)
    if not drained(t, 'mail') or not drained(t, 'receipts'):
        fail('left after every ack: %d mail, %d receipts' % (db_count(t, 'mail'),
                                                            db_count(t, 'receipts')))
    t.stop()


def test_draining_a_big_mailbox_is_not_rate_limited():
    """A recipient acknowledges as fast as the tracker pushes: 300 messages
    acknowledged at once each are far over --rate-limit (50 frames/s, burst
    100) and still close nothing, as an acknowledgement of a push gives its
    token back.  One that acknowledges nothing costs a token as usual."""
    t = Tracker()
    bob_key = offline_user(t, 'bob')
    for s in range(4):
        c = mail_client(t, 'sender%d' % s)
        for i in range(75):
            stored(c, 'bob', b'%d-%d' % (s, i), i + 1)
        c.close()
    bob = mail_client(t, 'bob', bob_key)
    for i in range(300):
        bob.send({'t': 'mail_ack', 'mid': expect(bob, 'mail')['mid']})
    nothing_more(bob)
    if not drained(t, 'mail'):
        fail('%d messages left' % db_count(t, 'mail'))
    bob.send_bytes(b''.join(msg({'t': 'mail_ack', 'mid': 10 ** 9 + i}) for i in range(150)))
    bob.expect_error('rate_limited')
    t.stop()


def limit_case(args, fill, over, code, *words):
    """A tracker with args; fill(t, clients) must be stored, over(t, clients)
    refused with code and words in its msg."""
    t = Tracker(extra_args=args)
    c = {n: mail_client(t, n) for n in ('alice', 'carol', 'dave')}
    for n in ('bob', 'erin'):
        offline_user(t, n)
    fill(c)
    over(c, code, words)
    for cl in c.values():
        cl.ping()     # every error left the connection open
    t.stop()


def test_mailbox_full_each_limit():
    kb = b'k' * 1000

    def per_sender_fill(c):
        stored(c['alice'], 'bob', b'1', 1)
        stored(c['alice'], 'bob', b'2', 2)
        stored(c['alice'], 'erin', b'3', 3)    # per recipient: erin has room
        stored(c['carol'], 'bob', b'4', 4)     # per sender: carol has room

    limit_case(['--mail-per-sender', '2'], per_sender_fill,
               lambda c, code, w: refused(c['alice'], 'bob', b'5', 5, code, *w),
               'mailbox_full', 'bob', 'messages per sender')

    def max_fill(c):
        stored(c['alice'], 'bob', b'1', 1)
        stored(c['carol'], 'bob', b'2', 2)
        stored(c['dave'], 'bob', b'3', 3)
        stored(c['dave'], 'erin', b'4', 4)

    limit_case(['--mail-max', '3'], max_fill,
               lambda c, code, w: refused(c['alice'], 'bob', b'5', 5, code, *w),
               'mailbox_full', 'bob', 'messages per recipient')

    def bytes_fill(c):
        stored(c['alice'], 'bob', kb * 2, 1)
        stored(c['carol'], 'bob', kb, 2)       # exactly 3000: allowed

    limit_case(['--mail-bytes', '3000'], bytes_fill,
               lambda c, code, w: refused(c['dave'], 'bob', b'x', 3, code, *w),
               'mailbox_full', 'bob', 'bytes per recipient')

    def total_fill(c):
        stored(c['alice'], 'bob', kb * 3, 1)
        stored(c['carol'], 'erin', kb * 2, 2)  # 5000 in all

    limit_case(['--mail-total', '5000'], total_fill,
               lambda c, code, w: refused(c['dave'], 'erin', b'x', 3, code, *w),
               'mailbox_full', 'erin', 'bytes in all')


def test_mail_rate_limited():
    t = Tracker(extra_args=['--mail-rate', '3'])
    alice, _ = alice_and_offline_bob(t)
    for i in range(3):
        stored(alice, 'bob', b'm', i + 1)
    refused(alice, 'bob', b'm', 4, 'mail_rate_limited', 'hour')
    stored(alice, 'bob', b'm', 2)            # a resend costs nothing
    alice.close()
    alice = mail_client(t, 'alice', alice.key, label='alice again')
    refused(alice, 'bob', b'm', 5, 'mail_rate_limited')   # per sender, not per connection
    carol = mail_client(t, 'carol')
    stored(carol, 'bob', b'm', 5)
    if db_count(t, 'mail') != 4:
        fail('want 4 stored, have %d' % db_count(t, 'mail'))
    t.stop()


def test_ttl_expiry_gives_expired_receipt():
    t = Tracker(extra_args=['--mail-ttl', '2'])
    alice, bob_key = alice_and_offline_bob(t)
    stored(alice, 'bob', b'too late', 21)
    start = time.monotonic()
    r = expect(alice, 'receipt', timeout=10)
    took = time.monotonic() - start
    if (r['to'], r['id'], r['status']) != ('bob', 21, 'expired'):
        fail('alice got %r' % r)
    if took < 0.9 or took > 5:
        fail('the expired receipt came after %.1f s with --mail-ttl 2' % took)
    if db_count(t, 'mail') != 0:
        fail('expired mail is still stored')
    bob = mail_client(t, 'bob', bob_key)
    nothing_more(bob)
    # The receipt expires too, unacknowledged.  Nothing tells the client
    # when the sweep deleted it, so the database is polled.
    deadline = time.monotonic() + 10
    while db_count(t, 'receipts') and time.monotonic() < deadline:
        time.sleep(0.2)
    if db_count(t, 'receipts'):
        fail('the expired receipt was never swept')
    t.stop()


def test_kill9_right_after_mail_stored():
    t = Tracker()
    alice, bob_key = alice_and_offline_bob(t)
    box = os.urandom(8192)
    stored(alice, 'bob', box, 31)
    t.kill()
    t.start()
    bob = mail_client(t, 'bob', bob_key)
    m = expect(bob, 'mail')
    if m['box'] != box or m['from'] != 'alice':
        fail('after kill -9 bob got %r' % {k: v for k, v in m.items() if k != 'box'})
    t.stop()
    if sqlite(t.db, 'PRAGMA integrity_check') != ['ok']:
        fail('integrity_check after kill -9 failed')


def test_malformed_mail_frames_closed():
    t = Tracker()
    offline_user(t, 'bob')
    watcher = registered_client(t, 'watcher')
    cases = [
        {'t': 'mail_put', 'to': 'bob', 'box': b'x'},
        {'t': 'mail_put', 'id': 'one', 'to': 'bob', 'box': b'x'},
        {'t': 'mail_put', 'id': -1, 'to': 'bob', 'box': b'x'},
        {'t': 'mail_put', 'id': 0, 'to': 'bob', 'box': b'x'},
        {'t': 'mail_put', 'id': 1, 'box': b'x'},
        {'t': 'mail_put', 'id': 1, 'to': b'bob', 'box': b'x'},
        {'t': 'mail_put', 'id': 1, 'to': 'bob'},
        {'t': 'mail_put', 'id': 1, 'to': 'bob', 'box': 'a string'},
        {'t': 'mail_put', 'id': 1, 'to': 'bob', 'box': b''},
        {'t': 'mail_put', 'id': 1, 'to': 'bob', 'box': b'x' * 8193},
        {'t': 'mail_put', 'id': 1.0, 'to': 'bob', 'box': b'x'},
        {'t': 'mail_ack'},
        {'t': 'mail_ack', 'mid': 'x'},
        {'t': 'mail_ack', 'mid': 1, 'ok': 1},
        {'t': 'mail_ack', 'mid': 1, 'ok': 'yes'},
        {'t': 'receipt_ack'},
        {'t': 'receipt_ack', 'rid': -5},
        {'t': 'receipt_ack', 'rid': True},
    ]
    for i, d in enumerate(cases):
        c = mail_client(t, 'bad%02d' % i)
        c.send(d)
        c.expect_error('bad_message')
    # Before register: the fields first (bad_message), then not_registered,
    # which closes for the acknowledgements (they have no id to answer).
    for d in ({'t': 'mail_ack', 'mid': 1}, {'t': 'receipt_ack', 'rid': 1}):
        c = Raw(t.addr, label='early %s' % d['t'])
        c.hello()
        c.send(d)
        c.expect_error('not_registered')
    c = Raw(t.addr, label='early bad')
    c.hello()
    c.send({'t': 'mail_put', 'id': 1, 'to': 'bob', 'box': b''})
    c.expect_error('bad_message')
    # The box at its largest is fine; a nil ok counts as absent.
    ok = mail_client(t, 'fine')
    stored(ok, 'bob', b'y' * 8192, 1)
    mid = int(sqlite(t.db, 'SELECT mid FROM mail')[0])
    assert_serving(t, watcher)
    ok.send({'t': 'mail_ack', 'mid': mid, 'ok': None})  # not bob's: ignored
    ok.ping()
    t.stop()


def test_database_holds_the_box_as_sent():
    """The tracker stores the box, byte for byte, with only what the
    protocol says it keeps beside it."""
    t = Tracker()
    alice, _ = alice_and_offline_bob(t)
    box = b'opaque \x00\xff sealed bytes ' + os.urandom(64)
    before = int(time.time())
    stored(alice, 'bob', box, 2 ** 64 - 1)     # ids are uint64: the largest survives too
    row = sqlite(t.db, 'SELECT recipient, recipient_name, sender, sender_name, hex(sender_key),'
                       ' msg_id, size, stored, expires, hex(box) FROM mail')
    if len(row) != 1:
        fail('mail rows: %r' % row)
    f = row[0].split('|')
    if f[:4] != ['bob', 'bob', 'alice', 'alice'] or bytes.fromhex(f[4]) != alice.key.pk:
        fail('stored row %r' % f)
    if int(f[5]) & (2 ** 64 - 1) != 2 ** 64 - 1 or int(f[6]) != len(box):
        fail('stored id/size %r' % f[5:7])
    if not before - 1 <= int(f[7]) <= time.time() + 1 or int(f[8]) - int(f[7]) != 604800:
        fail('stored/expires %r (want a 7-day ttl)' % f[7:9])
    if bytes.fromhex(f[9]) != box:
        fail('the stored box differs from the one sent')
    t.stop()
    with open(t.db, 'rb') as fh:
        data = fh.read()
    wal = t.db + '-wal'
    if os.path.exists(wal):
        with open(wal, 'rb') as fh:
            data += fh.read()
    if box not in data:
        fail('the box is not stored as one run of its bytes')


def test_sender_leaves_before_the_commit():
    """A put whose sender closes at once is still stored (its answer has
    nowhere to go), and the tracker keeps serving."""
    t = Tracker()
    alice, bob_key = alice_and_offline_bob(t)
    alice.send({'t': 'mail_put', 'id': 1, 'to': 'bob', 'box': b'left'})
    alice.close()
    bob = mail_client(t, 'bob', bob_key)
    if expect(bob, 'mail')['box'] != b'left':
        fail('the mail of a sender that left is lost')
    assert_serving(t, bob)
    t.stop()


def test_mail_metrics():
    from test_metrics import scrape, wait_value
    t = Tracker(extra_args=['--metrics', '127.0.0.1:0', '--mail-max', '1', '--mail-rate', '2',
                            '--mail-ttl', '2'])
    m, _ = t.proc.wait_stderr(r'metrics on (127\.0\.0\.1:\d+)', timeout=15)
    maddr = m.group(1)
    v = scrape(maddr)
    for k in ('parley_mail_stored_total', 'parley_mail_delivered_total',
              'parley_mail_rejected_total', 'parley_mail_expired_total',
              'parley_mail_refused_limit_total{reason="full"}',
              'parley_mail_refused_limit_total{reason="rate"}',
              'parley_mail_waiting', 'parley_mail_waiting_bytes'):
        if v.get(k) != 0:
            fail('a fresh tracker reports %s = %r' % (k, v.get(k)))
    bob_key = offline_user(t, 'bob')
    offline_user(t, 'erin')
    offline_user(t, 'frank')
    alice = mail_client(t, 'alice')
    stored(alice, 'bob', b'x' * 100, 1)
    v = scrape(maddr)
    if (v['parley_mail_stored_total'], v['parley_mail_waiting'],
            v['parley_mail_waiting_bytes']) != (1, 1, 100):
        fail('after one put: %r' % {k: x for k, x in v.items() if 'mail' in k})
    refused(alice, 'bob', b'y', 2, 'mailbox_full')
    stored(alice, 'erin', b'z', 3)
    refused(alice, 'frank', b'z', 4, 'mail_rate_limited')
    v = scrape(maddr)
    if (v['parley_mail_refused_limit_total{reason="full"}'],
            v['parley_mail_refused_limit_total{reason="rate"}']) != (1, 1):
        fail('refusals: %r' % {k: x for k, x in v.items() if 'refused_limit' in k})
    bob = mail_client(t, 'bob', bob_key)
    bob.send({'t': 'mail_ack', 'mid': expect(bob, 'mail')['mid']})
    r1, r2 = expect(alice, 'receipt', timeout=10), expect(alice, 'receipt', timeout=10)
    if sorted((r1['id'], r1['status'], r2['id'], r2['status'])[::2]) != [1, 3]:
        fail('receipts %r %r' % (r1, r2))
    v = wait_value(maddr, 'parley_mail_expired_total', lambda x: x == 1, '1')
    if (v['parley_mail_delivered_total'], v['parley_mail_waiting'],
            v['parley_mail_waiting_bytes']) != (1, 0, 0):
        fail('after delivery and expiry: %r' % {k: x for k, x in v.items() if 'mail' in k})
    t.stop()


def test_mail_flags_help_and_config_file():
    binary = os.path.join(BUILD, 'parley-tracker')
    d = tempdir()
    for flag, bad in (('--mail-ttl', '0'), ('--mail-ttl', '31536001'), ('--mail-max', '-1'),
                      ('--mail-bytes', '1x'), ('--mail-per-sender', '1000001'),
                      ('--mail-rate', ''), ('--mail-total', str(2 ** 50 + 1))):
        r = subprocess.run([binary, flag, bad, '--db', os.path.join(d, 'x.db')],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
        if r.returncode != 2 or flag.encode() not in r.stderr:
            fail('%s %r: status %d, %r' % (flag, bad, r.returncode, r.stderr))
    helptext = subprocess.run([binary, '--help'], stdout=subprocess.PIPE, timeout=10,
                              check=True).stdout.decode()
    for flag, default in (('--mail-ttl', '604800'), ('--mail-max', '1000'),
                          ('--mail-bytes', '4194304'), ('--mail-per-sender', '100'),
                          ('--mail-rate', '300'), ('--mail-total', '1073741824')):
        part = helptext[helptext.index('  ' + flag):].split('\n  --', 1)[0]
        if 'default ' + default not in part:
            fail('--help does not give %s its default %s:\n%s' % (flag, default, part))
    conf = os.path.join(d, 'tracker.conf')
    with open(conf, 'w') as f:
        f.write('mail-ttl 3600\nmail-max 7\nmail-bytes 7000\nmail-per-sender 2\n'
                'mail-rate 9\nmail-total 70000\n')
    t = Tracker(extra_args=['--config', conf, '--mail-rate', '10'])
    t.proc.wait_stderr(r'mailbox: mail waits 3600 s at most; per user 7 messages and 7000 '
                       r'bytes, 2 per sender; 10 puts per sender an hour; 70000 bytes in all')
    alice, _ = alice_and_offline_bob(t)
    stored(alice, 'bob', b'1', 1)
    stored(alice, 'bob', b'2', 2)
    refused(alice, 'bob', b'3', 3, 'mailbox_full', 'per sender')
    t.stop()


if __name__ == '__main__':
    runner.main(globals())

"""test_registry_pg_mail: the offline mailbox in the shared PostgreSQL
registry (tracker/mailbox_pg.c): mail left at tracker 1 is delivered by
tracker 2, where its recipient registers, and the sender's receipt comes
back through tracker 1 (a kick passed between the trackers); a recipient
online at the other tracker gets new mail at once; resends are stored
once; the tables empty when everything is acknowledged.  And the real
peers: a letter left at one tracker is read at the other, and its sender
sees it delivered.  Real servers (pgserver.py; skipped loudly without
PostgreSQL)."""
import os
import time

import runner
from pgserver import PgServer
from procs import Peer, fail
from test_mailbox import expect, mail_client, nothing_more, refused, stored
from test_registry_pg import lock_users, pg_tracker, stop_all, unlock
from test_registry_pg_reach import pings_answered_at_once
from sodium import Key
from wire import Raw


def rows(pg, table):
    return int(pg.psql('SELECT count(*) FROM %s' % table))


def test_pg_mail_left_at_one_tracker_delivered_by_the_other():
    pg = PgServer()
    t1, t2 = pg_tracker(pg, 'tracker1'), pg_tracker(pg, 'tracker2')
    bob_key = Key()
    first = Raw(t2.addr, label='bob first')
    first.must_register('Bob', bob_key)
    first.close()
    alice = mail_client(t1, 'alice', label='alice@t1')
    box = os.urandom(500)
    stored(alice, 'BOB', box, 7, want_to='Bob')
    stored(alice, 'bob', box, 7, want_to='Bob')  # a resend stores nothing twice
    if rows(pg, 'parley_mail') != 1:
        fail('parley_mail holds %d rows after a put and its resend' % rows(pg, 'parley_mail'))
    bob = mail_client(t2, 'bob', bob_key, label='bob@t2')
    m = expect(bob, 'mail')
    if m.get('from') != 'alice' or m.get('key') != alice.key.pk or m.get('box') != box:
        fail('bob at tracker 2 got %r' % m)
    nothing_more(bob)
    bob.send({'t': 'mail_ack', 'mid': m['mid']})
    r = expect(alice, 'receipt')  # at tracker 1: told by tracker 2
    if r.get('to') != 'Bob' or r.get('id') != 7 or r.get('status') != 'delivered':
        fail('alice at tracker 1 got the receipt %r' % r)
    if rows(pg, 'parley_mail') != 0:
        fail('the acknowledged mail is still in parley_mail')
    alice.send({'t': 'receipt_ack', 'rid': r['rid']})
    nothing_more(alice)
    # Online at the other tracker: pushed at once.
    stored(alice, 'bob', b'while you are here', 8, want_to='Bob')
    m = expect(bob, 'mail')
    if m.get('box') != b'while you are here':
        fail('bob, online at tracker 2, got %r' % m)
    bob.send({'t': 'mail_ack', 'mid': m['mid'], 'ok': False})
    r = expect(alice, 'receipt')
    if r.get('id') != 8 or r.get('status') != 'refused':
        fail('alice got %r for the refused mail' % r)
    alice.send({'t': 'receipt_ack', 'rid': r['rid']})
    nothing_more(alice)
    nothing_more(bob)
    # receipt_ack has no answer: its delete commits with a batch of the
    # tracker's, which the pong does not wait for.
    deadline = time.monotonic() + 10
    while rows(pg, 'parley_receipts') != 0:
        if time.monotonic() > deadline:
            fail('parley_receipts holds %d rows 10 s after every receipt_ack' %
                 rows(pg, 'parley_receipts'))
        time.sleep(0.05)
    stop_all((alice, bob), (t1, t2))


def test_pg_mail_windows_do_not_stall_the_tracker():
    """A registering user's windows (its waiting mail and receipts) are
    read in the next batch, not by a blocking round trip: while an
    operator's lock holds parley_mail, carol registers again and is
    answered, alice's and carol's pings go on, and carol's mail comes once
    the lock goes (once: a fill asked for meanwhile does not hand it out
    twice)."""
    pg = PgServer()
    t1 = pg_tracker(pg, 'tracker1')
    carol_key = Key()
    first = Raw(t1.addr, label='carol first')
    first.must_register('carol', carol_key)
    first.close()
    alice = mail_client(t1, 'alice', label='alice')
    stored(alice, 'carol', b'while you were away', 3)
    nothing_more(alice)
    lock = lock_users(pg, 'parley_mail')
    carol = mail_client(t1, 'carol', carol_key, label='carol')  # its registered came
    pings_answered_at_once((alice, carol))
    carol.expect_silence(0.3)  # the mail waits for the lock
    unlock(lock)
    m = expect(carol, 'mail')
    if m.get('from') != 'alice' or m.get('box') != b'while you were away':
        fail('carol got %r once the lock went' % m)
    nothing_more(carol)
    carol.send({'t': 'mail_ack', 'mid': m['mid']})
    r = expect(alice, 'receipt')
    if r.get('id') != 3 or r.get('status') != 'delivered':
        fail('alice got the receipt %r' % r)
    stop_all((alice, carol), (t1,))


def test_pg_mail_limits_count_the_shared_mailbox():
    """--mail-max is checked against what every
    tracker left in the shared mailbox."""
    pg = PgServer()
    t1 = pg_tracker(pg, 'tracker1', ['--mail-max', '2'])
    t2 = pg_tracker(pg, 'tracker2', ['--mail-max', '2'])
    first = Raw(t1.addr, label='bob first')
    first.must_register('bob')
    first.close()
    alice = mail_client(t1, 'alice', label='alice@t1')
    carol = mail_client(t2, 'carol', label='carol@t2')
    stored(alice, 'bob', b'one', 1)
    stored(carol, 'bob', b'two', 1)
    refused(alice, 'bob', b'three', 2, 'mailbox_full')  # 2 waiting, from both trackers
    refused(carol, 'bob', b'four', 2, 'mailbox_full')
    if rows(pg, 'parley_mail') != 2:
        fail('parley_mail holds %d rows, want 2' % rows(pg, 'parley_mail'))
    stop_all((alice, carol), (t1, t2))


def test_pg_real_peers_letter_across_trackers():
    """alice at tracker 1 writes to bob, offline: the letter is left in
    PostgreSQL; bob starts at tracker 2 and reads it; alice sees it
    delivered."""
    pg = PgServer()
    t1, t2 = pg_tracker(pg, 'tracker1'), pg_tracker(pg, 'tracker2')
    bob = Peer('bob', t2.addr, label='bob (first run)')
    bob.registered()
    bob_home = bob.home
    bob.quit()
    alice = Peer('alice', t1.addr)
    alice.registered()
    alice.expect(r'^offline bob$|^users', 2) if False else None
    alice.send('/msg bob left at tracker 1')
    alice.expect(r'^stored bob #1$', 15)
    bob = Peer('bob', t2.addr, home=bob_home, label='bob (second run)')
    bob.registered()
    bob.expect(r'^msg alice: left at tracker 1$', 15)
    alice.expect(r'^delivered bob #1$', 15)
    if bob.count(r'^msg alice: left at tracker 1$') != 1:
        fail('the letter was shown more than once')
    alice.quit()
    bob.quit()
    stop_all((), (t1, t2))


if __name__ == '__main__':
    runner.main(globals())

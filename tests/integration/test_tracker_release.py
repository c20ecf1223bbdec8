"""test_tracker_release: `parley-tracker --release NAME`, the operator's way
to free a name whose key was lost (docs/PROTOCOL.md, "register"), run as
a second process while the tracker serves the same database: the binding
goes, and with it the mail waiting for the name (its senders get an
"expired" receipt) and what the name left; the running tracker stops
answering from its cache at once and lets another key take the name; an
unknown name, an online one, a name that cannot be one and a missing
database each fail with a clear message and nothing changed."""
import os
import sqlite3
import subprocess

import runner
from procs import BUILD, Tracker, fail, sqlite, tempdir
from sodium import Key
from test_mailbox import expect, mail_client, nothing_more, offline_user, stored
from wire import Raw, registered_client


def write_db(db, sql):
    """Writes to the database beside the running tracker, waiting for its
    batch as --release does (the sqlite3 shell would fail at once)."""
    con = sqlite3.connect(db, timeout=10)
    try:
        con.executescript(sql)
    finally:
        con.close()


def release(name, db, *extra):
    """Runs --release as an operator would: (status, stdout, stderr)."""
    p = subprocess.run([os.path.join(BUILD, 'parley-tracker'), '--release', name, '--db', db]
                       + list(extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=30)
    return p.returncode, p.stdout.decode(errors='replace'), p.stderr.decode(errors='replace')


def wait_offline(t, folded, client):
    """Until the tracker has written folded offline (its close is handled
    in a loop pass of its own); client pings meanwhile."""
    for _ in range(100):
        if sqlite(t.db, "SELECT online FROM users WHERE folded = '%s'" % folded) == ['0']:
            return
        client.ping()
    fail('%s is still marked online' % folded)


def test_release_while_running_then_another_key_registers():
    t = Tracker()
    key_a = offline_user(t, 'Alice')      # registered once with key A, then gone
    bob = registered_client(t, 'bob')
    look = bob.lookup('alice')            # now in the tracker's cache
    if look.get('key') != key_a.pk:
        fail('alice should be bound to key A: %r' % look)
    # carol leaves alice two messages; alice left dave one before she lost
    # her key (put straight in: she is gone) and has a receipt waiting.
    carol = mail_client(t, 'carol')
    stored(carol, 'alice', b'sealed to key A, 1', 1, want_to='Alice')
    stored(carol, 'alice', b'sealed to key A, 2', 2, want_to='Alice')
    offline_user(t, 'dave')
    write_db(t.db, "INSERT INTO mail (recipient, recipient_name, sender, sender_name, sender_key,"
                 " msg_id, size, stored, expires, box) VALUES ('dave', 'dave', 'alice', 'Alice',"
                 " zeroblob(32), 7, 3, 1, 4102444800, x'616263');"
                 "INSERT INTO receipts (sender, recipient, msg_id, status, expires)"
                 " VALUES ('alice', 'erin', 9, 'delivered', 4102444800)")
    carol.close()
    wait_offline(t, 'alice', bob)

    rc, out, err = release('ALICE', t.db)   # any spelling of the name
    if rc != 0:
        fail('--release alice exited %d: %s%s' % (rc, out, err))
    if not out.startswith('released Alice (bound since ') or 'any key' not in out:
        fail('--release should say what it released: %r' % out)
    if 'deleted 2 messages waiting for it' not in out or '1 it left for others' not in out \
            or '1 receipt for it' not in out:
        fail('--release should say what it deleted: %r' % out)
    if not t.proc.alive():
        fail('the running tracker died during --release')

    # The running tracker answers from the file, not from its cache.
    look = bob.lookup('alice')
    if look.get('t') != 'error' or look.get('code') != 'not_found':
        fail('after --release, lookup of alice answered %r' % look)
    t.proc.wait_stderr(r'another process changed the database', timeout=5)
    # Key B takes the name, on the same running tracker, spelled its way.
    key_b = Key()
    new = Raw(t.addr, label='alice with key B')
    r = new.register('alice', key=key_b, features=['mailbox'])
    if r.get('t') != 'registered' or r.get('name') != 'alice':
        fail('registering alice with key B after --release got %r' % r)
    look = bob.lookup('alice')
    if look.get('key') != key_b.pk or look.get('online') is not True:
        fail('alice should now be key B, online: %r' % look)
    # What waited for or from the old alice is gone; carol is told her two
    # messages will never be delivered at her next registration.
    if sqlite(t.db, "SELECT count(*) FROM mail") != ['0']:
        fail('mail left: %r' % sqlite(t.db, "SELECT recipient, sender, msg_id FROM mail"))
    if sqlite(t.db, "SELECT count(*) FROM receipts WHERE sender = 'alice'") != ['0']:
        fail('receipts for the old alice would reach the new one')
    carol = mail_client(t, 'carol', key=carol.key)
    got = sorted((f['id'], f['status'], f['to']) for f in
                 (expect(carol, 'receipt') for _ in range(2)))
    if got != [(1, 'expired', 'Alice'), (2, 'expired', 'Alice')]:
        fail('carol should get "expired" receipts for 1 and 2: %r' % got)
    nothing_more(carol)
    # The new alice gets none of the old one's mail or receipts.
    nothing_more(new)
    t.stop()


def test_release_unknown_name_fails_clearly():
    t = Tracker()
    offline_user(t, 'alice')
    rc, out, err = release('nosuch', t.db)
    if rc != 1 or out:
        fail('--release nosuch: status %d, stdout %r (want 1 and nothing)' % (rc, out))
    if 'no user nosuch in %s' % t.db not in err or 'nothing to release' not in err:
        fail('--release nosuch should say there is no such user: %r' % err)
    # Not a name at all: a usage error.
    rc, out, err = release('two words', t.db)
    if rc != 2 or 'not a user name' not in err or 'whitespace' not in err:
        fail('--release "two words": status %d, %r' % (rc, err))
    # A database that is not there is not created.
    missing = os.path.join(tempdir(), 'typo.db')
    rc, out, err = release('alice', missing)
    if rc != 1 or 'cannot open the tracker database %s' % missing not in err:
        fail('--release on a missing --db: status %d, %r' % (rc, err))
    if os.path.exists(missing):
        fail('--release created %s' % missing)
    # A file that is not a tracker's database.
    other = os.path.join(tempdir(), 'other.db')
    sqlite(other, 'CREATE TABLE x (y)')
    rc, out, err = release('alice', other)
    if rc != 1 or 'not a tracker database' not in err:
        fail('--release on another SQLite file: status %d, %r' % (rc, err))
    # Nothing changed, and the tracker still serves alice's name.
    if sqlite(t.db, "SELECT name FROM users") != ['alice']:
        fail('a failed --release changed the users: %r' % sqlite(t.db, "SELECT name FROM users"))
    thief = Raw(t.addr, label='thief').register('alice')
    if thief.get('code') != 'name_taken':
        fail('alice should still be bound: %r' % thief)
    t.stop()


def test_release_refuses_an_online_name():
    """A name in use has its key: --release leaves it alone."""
    t = Tracker()
    alice = registered_client(t, 'alice')
    rc, out, err = release('alice', t.db)
    if rc != 1 or 'alice is online now' not in err or 'nothing was released' not in err:
        fail('--release of an online name: status %d, %r' % (rc, err))
    look = alice.lookup('alice')
    if look.get('key') != alice.key.pk:
        fail('alice lost her binding: %r' % look)
    # Once she is offline it works.
    alice.close()
    wait_offline(t, 'alice', registered_client(t, 'watcher'))
    rc, out, err = release('alice', t.db)
    if rc != 0:
        fail('--release of alice once offline: status %d, %r' % (rc, err))
    t.stop()


def test_release_takes_the_db_from_the_config_file():
    t = Tracker()
    offline_user(t, 'alice')
    wait_offline(t, 'alice', registered_client(t, 'watcher'))
    d = tempdir()
    conf = os.path.join(d, 'tracker.conf')
    with open(conf, 'w') as f:
        f.write('listen 127.0.0.1:0\ndb %s\n' % t.db)
    p = subprocess.run([os.path.join(BUILD, 'parley-tracker'), '--config', conf, '--release',
                        'alice'], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    if p.returncode != 0 or b'released alice' not in p.stdout:
        fail('--release with --config: %d %r %r' % (p.returncode, p.stdout, p.stderr))
    # In the file it is refused: it is a one-off command.
    with open(conf, 'a') as f:
        f.write('release bob\n')
    p = subprocess.run([os.path.join(BUILD, 'parley-tracker'), '--config', conf],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    if p.returncode != 2 or b'release does not belong in a config file' not in p.stderr:
        fail('release in a config file: %d %r' % (p.returncode, p.stderr))
    t.stop()


if __name__ == '__main__':
    runner.main(globals())

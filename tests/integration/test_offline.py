"""test_offline: the tracker's mailbox end to end, real tracker and peers.
A message to a user who is offline is sealed, left at the tracker (`stored
NAME #N`), and reaches its recipient exactly once when the recipient starts
later, even with the sender gone; the sender, started again, gets
`delivered`; the tracker's database never holds the text.  A tracker killed
with -9 between taking a letter and handing it over loses nothing.  A full
mailbox keeps the message in the sender's outbox, and it goes directly once
the recipient is back; an expired one tells the sender.  Forged letters (a
sender claiming another name, a letter sealed to someone else, a bad
signature) are refused by the recipient with an error and never shown."""
import glob
import os

import runner
from procs import Peer, Tracker, fail, tempdir
from sodium import Key, sodium
from wire import Raw, pack_map

MARK = 'zebra-quokka-7f3a'  # a string that exists only inside the messages


def known_offline(t, name):
    """name registered once (the tracker has its key) and quit."""
    p = Peer(name, t.addr, label='%s (first run)' % name)
    p.registered()
    p.quit()
    return p.home


def texts(p, sender):
    pre = 'msg %s: ' % sender
    return [l[len(pre):] for l in p.lines if l.startswith(pre)]


def tracker_files(t):
    return [f for f in glob.glob(t.db + '*') if os.path.isfile(f)]


def test_offline_message_reaches_user_who_starts_later():
    t = Tracker()
    bob_home = known_offline(t, 'bob')
    alice = Peer('alice', t.addr)
    alice.registered()
    sent = ['%s %d' % (MARK, i) for i in range(1, 6)]
    for s in sent:
        alice.send('/msg bob ' + s)
    for i in range(1, 6):
        alice.expect(r'^stored bob #%d$' % i, 15)
    alice.assert_none(r'^error: cannot reach bob')
    alice_home = alice.home
    alice.quit()
    # The tracker holds ciphertext only: no marker in its file or WAL.
    for f in tracker_files(t):
        if MARK.encode() in open(f, 'rb').read():
            fail('the tracker file %s holds the plaintext' % f)
    bob = Peer('bob', t.addr, home=bob_home, label='bob (second run)')
    bob.registered()
    for s in sent:
        bob.expect(r'^msg alice: %s$' % s, 15)
    alice2 = Peer('alice', t.addr, home=alice_home, label='alice (second run)')
    alice2.registered()
    for i in range(1, 6):
        alice2.expect(r'^delivered bob #%d$' % i, 15)
    # Each exactly once, in order, on the receiving side; nothing twice on
    # the sending side either.
    if texts(bob, 'alice') != sent:
        fail('bob showed %r, want %r' % (texts(bob, 'alice'), sent))
    for i in range(1, 6):
        if alice2.count(r'^delivered bob #%d$' % i) != 1:
            fail('delivered bob #%d shown %d times' % (i, alice2.count(r'^delivered bob #%d$' % i)))
    # Both histories hold the conversation.
    bob.send('/history alice')
    for s in sent:
        bob.expect(r'^history alice \S+ < %s$' % s, 10)
    alice2.send('/history bob')
    for s in sent:
        alice2.expect(r'^history bob \S+ > %s \(delivered\)$' % s, 10)
    # The tracker forgot the letters once bob took them.
    for f in tracker_files(t):
        if MARK.encode() in open(f, 'rb').read():
            fail('the tracker file %s holds the plaintext' % f)
    bob.quit()
    alice2.quit()
    t.stop()


def test_a_backlog_is_left_at_the_pace_the_tracker_takes():
    """300 messages to an offline user at once: far over the tracker's
    frame rate for one connection (--rate-limit 50/s, burst 100), yet
    every one is stored (the peer keeps a few puts out at a time and slows
    down when told), and every one reaches the user."""
    t = Tracker(extra_args=('--mail-per-sender', '1000'))
    bob_home = known_offline(t, 'bob')
    alice = Peer('alice', t.addr)
    alice.registered()
    n = 300
    alice.send('\n'.join('/msg bob backlog %d' % i for i in range(1, n + 1)))
    for i in range(1, n + 1):
        alice.expect(r'^stored bob #%d$' % i, 30)
    alice.assert_none(r'^error: ')
    bob = Peer('bob', t.addr, home=bob_home, label='bob (second run)')
    bob.registered()
    bob.expect(r'^msg alice: backlog %d$' % n, 60)
    if sorted(texts(bob, 'alice')) != sorted('backlog %d' % i for i in range(1, n + 1)):
        fail('bob showed %d of %d, or some twice' % (len(texts(bob, 'alice')), n))
    for i in range(1, n + 1):
        alice.expect(r'^delivered bob #%d$' % i, 30)
    bob.quit()
    alice.quit()
    t.stop()


def test_tracker_kill9_between_accepting_and_delivering():
    t = Tracker()
    bob_home = known_offline(t, 'bob')
    alice = Peer('alice', t.addr)
    alice.registered()
    for i in range(1, 11):
        alice.send('/msg bob kept %d' % i)
    for i in range(1, 11):
        alice.expect(r'^stored bob #%d$' % i, 15)
    alice.quit()
    t.kill()
    t.start()
    bob = Peer('bob', t.addr, home=bob_home, label='bob (second run)')
    bob.registered()
    for i in range(1, 11):
        bob.expect(r'^msg alice: kept %d$' % i, 15)
    if texts(bob, 'alice') != ['kept %d' % i for i in range(1, 11)]:
        fail('bob showed %r' % texts(bob, 'alice'))
    bob.quit()
    t.stop()


def test_full_mailbox_keeps_the_message_for_a_direct_delivery():
    t = Tracker(extra_args=('--mail-max', '2'))
    bob_home = known_offline(t, 'bob')
    alice = Peer('alice', t.addr)
    alice.registered()
    for i in range(1, 4):
        alice.send('/msg bob m%d' % i)
    alice.expect(r'^stored bob #1$', 15)
    alice.expect(r'^stored bob #2$', 15)
    alice.expect(r'^error: the tracker did not take message #3 for bob \(.*\); it stays in your '
                 r'outbox and goes out when bob is online$', 15)
    # bob comes back: two letters from the mailbox, the third by a link
    # alice dials by herself when she sees bob online.
    bob = Peer('bob', t.addr, home=bob_home, label='bob (second run)')
    bob.registered()
    for i in range(1, 4):
        bob.expect(r'^msg alice: m%d$' % i, 15)
    for i in range(1, 4):
        alice.expect(r'^delivered bob #%d$' % i, 15)
    if texts(bob, 'alice') != ['m1', 'm2', 'm3']:
        fail('bob showed %r' % texts(bob, 'alice'))
    bob.quit()
    alice.quit()
    t.stop()


def test_expired_letter_tells_the_sender():
    t = Tracker(extra_args=('--mail-ttl', '1'))
    bob_home = known_offline(t, 'bob')
    alice = Peer('alice', t.addr)
    alice.registered()
    alice.send('/msg bob too late')
    alice.expect(r'^stored bob #1$', 15)
    alice.expect(r'^error: message #1 to bob expired undelivered at the tracker', 15)
    alice.send('/history bob')
    alice.expect(r'^history bob \S+ > too late \(expired\)$', 10)
    bob = Peer('bob', t.addr, home=bob_home, label='bob (second run)')
    bob.registered()
    bob.expect_none(r'^msg alice', 2)
    bob.quit()
    alice.quit()
    t.stop()


def letter(from_name, fkey, to, tkey, mid, text):
    return pack_map({'t': 'mail', 'v': 1, 'from': from_name, 'fkey': fkey, 'to': to,
                     'tkey': tkey, 'id': mid, 'ts': 1, 'text': text})


def sealed(signer, body, seal_to):
    sig = sodium().sign(signer.sk, b'parley-mail-v1\x00' + body)
    return sodium().box_seal(sig + body, seal_to)


def test_forged_letters_refused():
    t = Tracker()
    alice_key, carol_key = Key(), Key()
    bob_home = known_offline(t, 'bob')
    # bob's key, as the tracker gives it to anyone.
    mallory = Raw(t.addr, label='raw mallory')
    mallory.must_register('mallory')
    r = mallory.lookup('bob')
    if r.get('t') != 'lookup_result':
        fail('lookup bob: %r' % r)
    bob_pk = r['key']
    forgeries = [
        # mallory signs a letter saying it is from alice
        ('names another sender', sealed(mallory.key, letter('alice', mallory.key.pk, 'bob', bob_pk,
                                                            11, 'forged 1'), bob_pk)),
        # signed by alice's key (not mallory's, the key the tracker has)
        ('not the one the name is registered with',
         sealed(alice_key, letter('mallory', alice_key.pk, 'bob', bob_pk, 12, 'forged 2'), bob_pk)),
        # claims mallory's key but another key signed it
        ('signature does not verify',
         sealed(alice_key, letter('mallory', mallory.key.pk, 'bob', bob_pk, 13, 'forged 3'), bob_pk)),
        # sealed to carol, handed to bob
        ('not sealed to your key',
         sealed(mallory.key, letter('mallory', mallory.key.pk, 'bob', bob_pk, 14, 'forged 4'),
                carol_key.pk)),
        # written to carol, re-sealed to bob
        ('written to someone else',
         sealed(mallory.key, letter('mallory', mallory.key.pk, 'carol', carol_key.pk, 15,
                                    'forged 5'), bob_pk)),
    ]
    for i, (_, box) in enumerate(forgeries):
        mallory.send({'t': 'mail_put', 'id': 100 + i, 'to': 'bob', 'box': box})
        a = mallory.recv_skip_presence()
        if a.get('t') != 'mail_stored' or a.get('id') != 100 + i:
            fail('mail_put answered %r' % a)
    # And one real letter, so we know bob read his mailbox.
    good = sealed(mallory.key, letter('mallory', mallory.key.pk, 'bob', bob_pk, 16, 'genuine'),
                  bob_pk)
    mallory.send({'t': 'mail_put', 'id': 200, 'to': 'bob', 'box': good})
    if mallory.recv_skip_presence().get('t') != 'mail_stored':
        fail('the genuine letter was not stored')
    bob = Peer('bob', t.addr, home=bob_home, label='bob (second run)')
    bob.registered()
    bob.expect(r'^msg mallory: genuine$', 15)
    for why, _ in forgeries:
        bob.expect(r'^error: refused a message left at the tracker by mallory: .*%s' % why, 15)
    if any(l.startswith('msg ') and 'forged' in l for l in bob.lines):
        fail('a forged letter was shown: %r' % bob.lines)
    # Refused letters are gone from the tracker: bob's next run gets none.
    bob.quit()
    bob2 = Peer('bob', t.addr, home=bob_home, label='bob (third run)')
    bob2.registered()
    bob2.expect_none(r'^(msg|error: refused)', 2)
    bob2.quit()
    mallory.close()
    t.stop()


if __name__ == '__main__':
    runner.main(globals())

"""test_history: HOME/history.db, what outlives links and processes.  A
sender killed with -9 right after typing (its recipient offline, or
stopped with the messages already on the wire) delivers every message once
and in order after its restart, with nothing typed; a receiver killed with
-9 while 200 messages stream in shows each exactly once over its two runs
and keeps each once in an intact database; /history in line and JSON mode
after both sides restarted (formats, N, order, states, usage errors);
--no-history leaves no database; a history.db other users can read is
refused at start; a message to an offline user goes out by itself when the
user comes online.  The tracker's offline mailbox is not tested here."""
import json
import os
import re
import shutil
import signal
import stat
import time

import runner
from procs import Peer, Tracker, connect, fail, shown, sqlite, tempdir
from procs import json_event as event

# A fixed zone three hours east of UTC, so "local time" in the history
# lines is checked against something other than UTC.
TZ = {'TZ': 'PLY-3'}
TZ_OFFSET = 3 * 3600


def jpeer(name, t, args=(), **kw):
    return Peer(name, t.addr, extra_args=('--ui', 'json') + tuple(args), **kw)


def events(p, type_, **want):
    """Every JSON event of type_ printed so far whose fields include want."""
    out = []
    for l in p.lines:
        if l.startswith('{"type":"%s"' % type_):
            ev = json.loads(l)
            if all(ev.get(k) == v for k, v in want.items()):
                out.append(ev)
    return out


def jregistered(p, timeout=15):
    return event(p, 'registered', timeout, name=p.name)


def quit_json(p):
    p.send('/quit')
    event(p, 'bye')
    rc = p.proc.wait_exit(10)
    p.proc.wait_output_done()
    p.proc.assert_clean()
    if rc != 0:
        fail('%s exited with %s after /quit' % (p.proc.label, rc))


def known_offline(t, name, **kw):
    """name registered once with the tracker (so it has a key there) and
    quit: offline.  Returns its home, to start it again later."""
    p = Peer(name, t.addr, label='%s (first run)' % name, **kw)
    p.registered()
    p.quit()
    return p.home


def received(lines, sender):
    """The texts of the `msg SENDER: TEXT` lines, in order."""
    pre = 'msg %s: ' % sender
    return [l[len(pre):] for l in lines if l.startswith(pre)]


def snapshot(home):
    """A copy of HOME/history.db with its -wal (as a crash left them), so
    sqlite3 never touches the peer's own files."""
    d = tempdir('parley-histcopy-')
    for suffix in ('', '-wal'):
        src = os.path.join(home, 'history.db' + suffix)
        if os.path.exists(src):
            shutil.copy2(src, os.path.join(d, 'history.db' + suffix))
    return os.path.join(d, 'history.db')


def integrity_ok(db, what):
    got = sqlite(db, 'PRAGMA integrity_check')
    if got != ['ok']:
        fail('integrity_check of %s: %r' % (what, got))


def local_time(ms):
    """What line mode prints for a time in ms, in the zone TZ."""
    return time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(ms // 1000 + TZ_OFFSET))


def once_in_order(got, want, what):
    if got == want:
        return
    missing = [w for w in want if w not in got]
    repeated = sorted({g for g in got if got.count(g) > 1})
    extra = [g for g in got if g not in want]
    fail('%s: %d shown, want %d; missing %r; repeated %r; unexpected %r; order %r'
         % (what, len(got), len(want), missing, repeated, extra, got))


# ---------------------------------------------------------------- the sender killed

def test_sender_kill9_before_ack_recipient_offline():
    """20 messages typed to an offline user, their sent events shown, then
    kill -9: the restarted sender delivers all 20 by itself once the
    recipient is online, each shown once and in order, delivered #1..#20."""
    t = Tracker()
    a_home = known_offline(t, 'alice')
    bob = jpeer('bob', t)
    jregistered(bob)
    texts = ['m%d from bob' % i for i in range(1, 21)]
    bob.send('\n'.join('/msg alice ' + x for x in texts))
    for i, x in enumerate(texts, 1):
        event(bob, 'sent', to='alice', seq=i, text=x)
    bob.kill()                      # before any ack could exist: alice is offline
    if events(bob, 'delivered'):
        fail('delivered before alice was ever online: %r' % events(bob, 'delivered'))

    alice = Peer('alice', t.addr, home=a_home)
    alice.registered()
    bob2 = jpeer('bob', t, home=bob.home, label='bob (restarted)')   # nothing typed
    jregistered(bob2)
    event(bob2, 'connected', timeout=20, name='alice')
    for i in range(1, 21):
        event(bob2, 'delivered', timeout=20, to='alice', seq=i)
    # One more each way, so a repeat of any of the 20 would be in by now.
    bob2.send('/msg alice after the restart')
    alice.expect(r'^msg bob: after the restart$')
    event(bob2, 'delivered', to='alice', seq=21)   # seq goes on across runs
    once_in_order(received(alice.lines, 'bob'), texts + ['after the restart'],
                  'alice, messages from bob')
    seqs = [e['seq'] for e in events(bob2, 'delivered', to='alice')]
    if seqs != list(range(1, 22)):
        fail('the restarted bob reported delivered %r, want #1..#21 each once in order' % seqs)
    alice.quit()
    quit_json(bob2)
    t.stop()


def test_sender_kill9_before_ack_messages_on_the_wire():
    """The link is up but alice is stopped (SIGSTOP): bob's 20 messages go
    out on the wire and no ack comes back; bob is killed with -9.  alice,
    continued, reads and shows them; bob, restarted, sends them again
    with their original ids: alice drops the repeats, bob gets every ack."""
    t = Tracker()
    alice = Peer('alice', t.addr)
    alice.registered()
    bob = jpeer('bob', t)
    jregistered(bob)
    bob.send('/dial alice')
    event(bob, 'connected', name='alice')
    alice.expect(r'^connected bob direct$')
    alice.proc.signal(signal.SIGSTOP)
    texts = ['wire %d' % i for i in range(1, 21)]
    bob.send('\n'.join('/msg alice ' + x for x in texts))
    for i, x in enumerate(texts, 1):
        event(bob, 'sent', to='alice', seq=i, text=x)
    bob.kill()
    if events(bob, 'delivered'):
        fail('delivered from a stopped alice: %r' % events(bob, 'delivered'))
    alice.proc.signal(signal.SIGCONT)
    alice.expect(r'^closed bob: connection lost$', 15)

    bob2 = jpeer('bob', t, home=bob.home, label='bob (restarted)')   # nothing typed
    jregistered(bob2)
    for i in range(1, 21):
        event(bob2, 'delivered', timeout=20, to='alice', seq=i)
    bob2.send('/msg alice after the restart')
    alice.expect(r'^msg bob: after the restart$')
    event(bob2, 'delivered', to='alice', seq=21)
    once_in_order(received(alice.lines, 'bob'), texts + ['after the restart'],
                  'alice, messages from bob')
    seqs = [e['seq'] for e in events(bob2, 'delivered', to='alice')]
    if seqs != list(range(1, 22)):
        fail('the restarted bob reported delivered %r, want #1..#21 each once in order' % seqs)
    alice.quit()
    quit_json(bob2)
    t.stop()


# ---------------------------------------------------------------- the receiver killed

def test_receiver_kill9_while_messages_stream_in():
    """bob sends 200 messages of 400 bytes (the first 150 at once, the
    rest once alice is gone); alice is killed with -9 as soon as she shows
    the first, most of the 150 still coming in, and started again on the
    same home.  Over her two runs every message is shown exactly once, and
    her history.db holds each once (and is intact right after the kill)."""
    n, half = 200, 150
    pad = ' ' + 'x' * 400
    texts = ['m%d%s' % (i, pad) for i in range(1, n + 1)]
    t = Tracker()
    alice = Peer('alice', t.addr)
    alice.registered()
    bob = Peer('bob', t.addr)
    bob.registered()
    connect(bob, alice)
    bob.send('\n'.join('/msg alice ' + x for x in texts[:half]))
    alice.expect(r'^msg bob: m1 x', 15)
    alice.kill()
    alice.proc.wait_output_done()
    run1 = alice.lines
    after_kill = snapshot(alice.home)
    integrity_ok(after_kill, 'alice\'s history.db right after kill -9')
    kept1 = sqlite(after_kill, "SELECT CAST(text AS TEXT) FROM messages "
                               "WHERE dir = 1 AND peer = 'bob' ORDER BY id")
    bob.send('\n'.join('/msg alice ' + x for x in texts[half:]))   # to a dead link, then nobody

    alice2 = Peer('alice', t.addr, home=alice.home, label='alice (restarted)')
    alice2.registered()
    bob.expect(r'^online alice$', 15)
    for i in range(1, n + 1):
        bob.expect(r'^delivered alice #%d$' % i, 30)
    bob.send('/msg alice the end')
    alice2.expect(r'^msg bob: the end$', 15)
    bob.expect(r'^delivered alice #%d$' % (n + 1))
    for i in range(1, n + 2):
        k = bob.count(r'^delivered alice #%d$' % i)
        if k != 1:
            fail('bob: delivered alice #%d %d times, want once' % (i, k))

    alice2.send('/history bob 1000')
    alice2.expect(r'^history bob \S+ < the end$', 15)
    hist = [l for l in alice2.lines if l.startswith('history bob ')]
    rx = re.compile(r'^history bob \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d < (.*)$')
    rows = [rx.match(l).group(1) if rx.match(l) else l for l in hist]
    once_in_order(rows, texts + ['the end'], 'alice\'s /history bob 1000')
    alice2.quit()
    bob.quit()
    t.stop()
    db = snapshot(alice.home)
    integrity_ok(db, 'alice\'s history.db after her second run')
    # In the senders' order, as /history shows them: after the restart bob's
    # messages come by two paths at once (the link and the mailbox), so
    # arrival order may differ by a message.
    kept = sqlite(db, "SELECT CAST(text AS TEXT) FROM messages WHERE dir = 1 AND peer = 'bob' "
                      "ORDER BY ts, msg_id, id")
    once_in_order(kept, texts + ['the end'], 'alice\'s history.db, rows from bob')
    dups = sqlite(db, 'SELECT msg_id FROM messages WHERE dir = 1 GROUP BY sender_key, msg_id '
                      'HAVING count(*) > 1')
    if dups:
        fail('history.db holds message ids more than once: %r' % dups)

    # What she showed, over both runs: each exactly once.  A line cut by
    # the kill counts as not shown.  Live, the order may differ by a message
    # after the restart: bob's messages then come by two paths at once (the
    # link he dials again and the tracker's mailbox he left them in while
    # alice was down), and each is shown as its first copy arrives; the
    # history (checked above) is in bob's order.
    got = received(run1, 'bob') + received(alice2.lines, 'bob')
    if sorted(got) != sorted(texts + ['the end']) or len(got) != len(set(got)):
        def num(x):
            m = re.match(r'm(\d+) x{400}$', x)
            return int(m.group(1)) if m else x
        want = [num(x) for x in texts] + ['the end']
        got_n = [num(x) for x in got]
        missing = [w for w in want if w not in got_n]
        repeated = sorted({g for g in got_n if isinstance(g, int) and got_n.count(g) > 1})
        in_db = [w for w in missing if isinstance(w, int) and texts[w - 1] in kept1]
        fail('alice showed %d messages over her two runs, want %d: missing %r (of which %r were '
             'in her history.db right after the kill, so her restart took the resend as a '
             'repeat and never showed them); repeated %r; run 1 showed %d (last line %r), '
             'run 2 showed %d'
             % (len(got), len(want), missing, in_db, repeated, len(received(run1, 'bob')),
                run1[-1][:40] if run1 else None, len(received(alice2.lines, 'bob'))))


# ---------------------------------------------------------------- /history

def test_history_both_sides_after_restart():
    t = Tracker()
    known_offline(t, 'carol')      # bob's message to her waits at the tracker
    alice = Peer('alice', t.addr, env=TZ)
    alice.registered()
    bob = jpeer('bob', t, env=TZ)
    jregistered(bob)
    bob.send('/dial alice')
    event(bob, 'connected', name='alice')
    alice.expect(r'^connected bob direct$')
    alice.expect(r'^current bob$')
    # Turn by turn, so both databases hold them in this order.
    convo = [('bob', 'b1 hello alice'), ('alice', 'a1 hi bob'),
             ('bob', 'b2 back\\slash, tab\tand bell\x07'), ('alice', 'a2 Émile 😀'),
             ('bob', 'b3 last one')]
    times = []
    nb = na = 0
    for who, text in convo:
        if who == 'bob':
            nb += 1
            bob.send(text)
            alice.expect(r'^msg bob: %s$' % re.escape(shown(text)))
            times.append(event(bob, 'sent', to='alice', seq=nb)['time'])
            event(bob, 'delivered', to='alice', seq=nb)
        else:
            na += 1
            alice.send(text)
            times.append(event(bob, 'message', **{'from': 'alice', 'text': text})['time'])
            alice.expect(r'^delivered bob #%d$' % na)
    bob.send('/msg carol for carol, who is away')
    event(bob, 'sent', to='carol', seq=1)
    event(bob, 'stored', to='carol', seq=1)
    alice.quit()
    quit_json(bob)

    alice = Peer('alice', t.addr, home=alice.home, env=TZ, label='alice (restarted)')
    alice.registered()
    bob = jpeer('bob', t, home=bob.home, env=TZ, label='bob (restarted)')
    jregistered(bob)

    # Line mode: one line per message, oldest first, ours with a state.
    def line_rows(rows):
        out = []
        for (who, text), ms in rows:
            if who == 'alice':
                out.append('history bob %s > %s (delivered)' % (local_time(ms), shown(text)))
            else:
                out.append('history bob %s < %s' % (local_time(ms), shown(text)))
        return out
    pairs = list(zip(convo, times))
    for cmd, want in (('/history bob', line_rows(pairs)),
                      ('/history bob 2', line_rows(pairs[-2:])),
                      ('/history bob 5', line_rows(pairs)),
                      ('/history bob 1000', line_rows(pairs))):
        start = len(alice.lines)
        alice.send(cmd)
        alice.expect(r'^%s$' % re.escape(want[-1]))
        got = [l for l in alice.lines[start:] if l.startswith('history ')]
        if got != want:
            fail('alice %r printed:\n  %s\nwant:\n  %s' % (cmd, '\n  '.join(got),
                                                          '\n  '.join(want)))
    alice.send('/history carol')
    alice.expect(r'^history carol none$')
    alice.send('/history nobody 3')
    alice.expect(r'^history nobody none$')
    for cmd in ('/history', '/history bob x', '/history bob 0', '/history bob -1',
                '/history bob 2 3'):
        alice.send(cmd)
        alice.expect(r'^error: .*/history')
    alice.send('/history ' + 'x' * 33)
    alice.expect(r'^error: ')
    alice.send('/history bob 1')      # and it still answers after the errors
    alice.expect(r'^%s$' % re.escape(line_rows(pairs[-1:])[0]))
    alice.assert_none(r'^history (bob x|bob 0|x{33})')

    # JSON: one event with the rows.
    def json_rows(rows):
        out = []
        seq = 0
        for (who, text), ms in rows:
            if who == 'bob':
                seq += 1
                out.append({'dir': 'out', 'time': ms, 'seq': seq, 'state': 'delivered',
                            'text': text})
            else:
                out.append({'dir': 'in', 'time': ms, 'text': text})
        return out
    all_rows = json_rows(pairs)
    bob.send('/history alice')
    ev = event(bob, 'history')
    if ev['name'] != 'alice' or ev['rows'] != all_rows:
        fail('bob /history alice: %r\nwant rows %r' % (ev, all_rows))
    for row in ev['rows']:      # no more fields than documented
        if list(row) != (['dir', 'time', 'seq', 'state', 'text'] if row['dir'] == 'out'
                         else ['dir', 'time', 'text']):
            fail('history row fields: %r' % row)
    bob.send('/history alice 2')
    ev = event(bob, 'history')
    if ev['rows'] != all_rows[-2:]:
        fail('bob /history alice 2: %r, want %r' % (ev['rows'], all_rows[-2:]))
    bob.send('/history carol')
    ev = event(bob, 'history', name='carol')
    rows = ev['rows']
    if len(rows) != 1 or rows[0]['dir'] != 'out' or rows[0]['seq'] != 1 or \
            rows[0]['state'] != 'stored' or rows[0]['text'] != 'for carol, who is away':
        fail('bob /history carol (carol never came online): %r' % ev)
    bob.send('/history dave')
    ev = event(bob, 'history', name='dave')
    if ev['rows'] != []:
        fail('bob /history dave (never talked): %r' % ev)
    for cmd in ('/history', '/history alice x'):
        bob.send(cmd)
        ev = event(bob, 'error', code='usage')
        if '/history' not in ev['text']:
            fail('%s: %r' % (cmd, ev))

    # The numbers go on across the restart, and /history follows.
    bob.send('/msg alice b4 after the restart')
    alice.expect(r'^msg bob: b4 after the restart$', 15)
    sent = event(bob, 'sent', to='alice', seq=4)
    event(bob, 'delivered', to='alice', seq=4)
    alice.send('/history bob 1')
    alice.expect(r'^history bob %s < b4 after the restart$' % re.escape(local_time(sent['time'])))
    bob.send('/history alice 1')
    ev = event(bob, 'history', name='alice')
    want = [{'dir': 'out', 'time': sent['time'], 'seq': 4, 'state': 'delivered',
             'text': 'b4 after the restart'}]
    if ev['rows'] != want:
        fail('bob /history alice 1 after delivered #4: %r, want %r' % (ev['rows'], want))
    alice.quit()
    quit_json(bob)
    t.stop()


# ---------------------------------------------------------------- --no-history

def test_no_history_keeps_nothing_on_disk():
    t = Tracker()
    alice = Peer('alice', t.addr, extra_args=['--no-history'])
    alice.registered()
    bob = Peer('bob', t.addr, extra_args=['--no-history'])
    bob.registered()
    connect(alice, bob)
    for i in range(1, 4):
        alice.send('from alice %d' % i)
        bob.expect(r'^msg alice: from alice %d$' % i)
        alice.expect(r'^delivered bob #%d$' % i)
        bob.send('from bob %d' % i)
        alice.expect(r'^msg bob: from bob %d$' % i)
        bob.expect(r'^delivered alice #%d$' % i)
    alice.send('/history bob')
    alice.expect(r'^error: .*--no-history')
    alice.assert_none(r'^history ')
    alice.quit()
    bob.quit()
    t.stop()
    for p in (alice, bob):
        left = [f for f in os.listdir(p.home) if f.startswith('history')]
        if left:
            fail('%s ran with --no-history but left %r in its home' % (p.name, left))


# ---------------------------------------------------------------- file mode

def test_history_db_other_users_can_read_is_refused():
    t = Tracker()
    alice = Peer('alice', t.addr)
    alice.registered()
    alice.quit()
    db = os.path.join(alice.home, 'history.db')
    for f in (db, db + '-wal', db + '-shm'):
        if os.path.exists(f) and stat.S_IMODE(os.stat(f).st_mode) != 0o600:
            fail('%s has mode %03o, want 600' % (f, stat.S_IMODE(os.stat(f).st_mode)))
    if not os.path.exists(db):
        fail('no history.db in alice\'s home after a run: %r' % os.listdir(alice.home))
    for mode in (0o644, 0o640):
        os.chmod(db, mode)
        p = Peer('alice', t.addr, home=alice.home, label='alice (history.db %03o)' % mode)
        rc = p.proc.wait_exit(15)
        p.proc.wait_output_done()
        p.proc.assert_clean()
        err = '\n'.join(p.proc.err_lines)
        if rc == 0:
            fail('the peer started with history.db mode %03o (status 0)' % mode)
        if 'chmod 600' not in err or db not in err:
            fail('history.db mode %03o: stderr does not say chmod 600 %s:\n%s' % (mode, db, err))
        p.assert_none(r'^registered ', 'registration with a readable history.db')
        if stat.S_IMODE(os.stat(db).st_mode) != mode:
            fail('the refused peer changed history.db\'s mode itself')
    os.chmod(db, 0o600)      # the hint's fix works
    p = Peer('alice', t.addr, home=alice.home, label='alice (fixed)')
    p.registered()
    p.quit()
    t.stop()


# ---------------------------------------------------------------- coming online

def test_undelivered_message_goes_when_recipient_comes_online():
    """bob writes to alice while she is offline and stays running, and the
    tracker's mailbox takes nothing (--mail-max 0), so the messages wait in
    bob's outbox; alice starts and types nothing: the messages reach her (a
    presence push makes bob dial), bob gets delivered."""
    t = Tracker(extra_args=('--mail-max', '0'))
    a_home = known_offline(t, 'alice')
    bob = Peer('bob', t.addr)
    bob.registered()
    texts = ['while you were out', 'second', 'third']
    for x in texts:
        bob.send('/msg alice ' + x)
    for i in range(1, len(texts) + 1):
        bob.expect(r'^error: the tracker did not take message #%d for alice \(.*\); it stays in '
                   r'your outbox and goes out when alice is online$' % i, 15)
    bob.assert_none(r'^(delivered|stored) ')
    alice = Peer('alice', t.addr, home=a_home)
    alice.registered()
    bob.expect(r'^online alice$', 15)
    for i in range(1, len(texts) + 1):
        bob.expect(r'^delivered alice #%d$' % i, 20)
    alice.expect(r'^msg bob: third$', 10)
    alice.send('/msg bob got them')          # a round trip: any repeat is in by now
    bob.expect(r'^msg alice: got them$')
    once_in_order(received(alice.lines, 'bob'), texts, 'alice, messages from bob')
    for i in range(1, len(texts) + 1):
        if bob.count(r'^delivered alice #%d$' % i) != 1:
            fail('bob: delivered alice #%d %d times' % (i, bob.count(r'^delivered alice #%d$' % i)))
    alice.quit()
    bob.quit()
    t.stop()


if __name__ == '__main__':
    runner.main(globals())

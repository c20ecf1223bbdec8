"""test_json: --ui json, the peer's face for scripts.  A scripted session
whose every stdout line must parse with a real JSON parser (jq and Python's
json module) and carry the documented fields; text with control characters
and invalid UTF-8 from a peer comes out escaped, never raw; and the shell +
jq bot of contrib/parley-bot.sh (quoted in README.md) answers messages."""
import json
import os
import re
import shutil
import signal
import subprocess
import time

import runner
from procs import BUILD, Peer, ROOT, SANITIZER_MARKS, Tracker, fail, on_cleanup, tempdir
from procs import json_event as event

TYPES = {  # type -> fields every such event has (README.md's table)
    'registered': {'name', 'tracker', 'seen_as'},
    'tracker_lost': {'reason', 'retry_ms', 'repeat', 'tracker', 'was_registered'},
    'presence': {'name', 'online'},
    'users': {'count', 'names'},
    'connected': {'name', 'path'},
    'current': {'name'},
    'message': {'from', 'id', 'time', 'text'},
    'sent': {'to', 'seq', 'time', 'text'},
    'delivered': {'to', 'seq'},
    'closed': {'name', 'reason'},
    'error': {'code', 'text'},
    'help': {'lines'},
    'bye': set(),
}


def jpeer(name, t, **kw):
    return Peer(name, t.addr, extra_args=('--ui', 'json'), **kw)


def registered(p):
    return event(p, 'registered', name=p.name)


def quit_json(p):
    p.send('/quit')
    event(p, 'bye')
    rc = p.proc.wait_exit(10)
    p.proc.wait_output_done()
    p.proc.assert_clean()
    if rc != 0:
        fail('%s exited with %s after /quit' % (p.proc.label, rc))


def check_lines(p, start_us=None):
    """Every stdout line: valid UTF-8 (the harness would have shown a bad
    byte as a \\x escape, which is not valid JSON), one object, a known type
    with its fields, "ts" second (after "type": an integer, microseconds
    of wall clock, never going back by more than clock noise, and after
    start_us when given), and jq agrees."""
    lines = p.lines
    if not lines:
        fail('%s printed nothing' % p.name)
    last = 0
    for l in lines:
        if not re.match(r'^\{"type":"[a-z_]+","ts":\d+[,}]', l):
            fail('%s: an event without "ts" right after "type": %r' % (p.name, l))
        ts = json.loads(l)['ts']
        if not isinstance(ts, int) or (start_us and ts < start_us) or ts > time.time() * 1e6 + 1e6:
            fail('%s: ts %r is not this run\'s wall clock in microseconds: %r' % (p.name, ts, l))
        if ts < last - 100000:  # one process, one clock: monotonic but for NTP steps
            fail('%s: ts went back from %d to %d: %r' % (p.name, last, ts, l))
        last = max(last, ts)
    for l in lines:
        try:
            ev = json.loads(l)
        except ValueError as e:
            fail('%s: not JSON (%s): %r' % (p.name, e, l))
        if not isinstance(ev, dict) or ev.get('type') not in TYPES:
            fail('%s: not an event object with a known type: %r' % (p.name, l))
        missing = TYPES[ev['type']] - set(ev)
        if missing:
            fail('%s: %s event without %s: %r' % (p.name, ev['type'], sorted(missing), l))
    jq = shutil.which('jq')
    if not jq:
        fail('jq is not installed (make deps installs it)')
    data = ''.join(l + '\n' for l in lines).encode('utf-8')
    out = subprocess.run([jq, '-c', '.'], input=data, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, timeout=30)
    if out.returncode != 0:
        fail('jq rejected %s\'s output: %s' % (p.name, out.stderr.decode(errors='replace')))
    n = out.stdout.count(b'\n')  # not splitlines: jq writes U+2028 raw
    if n != len(lines):
        fail('jq saw %d values in %d lines' % (n, len(lines)))
    for l in lines:  # and one line at a time, as a shell loop would
        r = subprocess.run([jq, '-e', '.type'], input=(l + '\n').encode(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        if r.returncode != 0:
            fail('jq rejected the line %r: %s' % (l, r.stderr.decode(errors='replace')))


def test_json_session():
    start_us = int(time.time() * 1e6)
    t = Tracker()
    alice = jpeer('alice', t)
    a_reg = registered(alice)
    if a_reg['tracker'] != t.addr or not isinstance(a_reg['seen_as'], str):
        fail('registered event: %r' % a_reg)
    bob = jpeer('bob', t)
    registered(bob)
    ev = event(alice, 'presence', name='bob')
    if ev['online'] is not True:
        fail('presence: %r' % ev)
    bob.send('/list')
    ev = event(bob, 'users')
    if ev['names'] != ['alice', 'bob'] or ev['count'] != 2:
        fail('users: %r' % ev)
    bob.send('/help')
    ev = event(bob, 'help')
    if not all(l.startswith('  /') or l.startswith('  ') for l in ev['lines']):
        fail('help: %r' % ev)
    bob.send('/frobnicate')
    ev = event(bob, 'error')
    if ev['code'] != 'unknown_command' or 'frobnicate' not in ev['text']:
        fail('error: %r' % ev)
    bob.send('plain text with nobody to talk to')
    if event(bob, 'error')['code'] != 'no_conversation':
        fail('a plain line with no conversation: want code no_conversation')
    # Every error carries the code its sender chose, not one guessed from
    # the text: a usage slip of /whois, and /trust of nobody.
    bob.send('/whois')
    ev = event(bob, 'error')
    if ev['code'] != 'usage' or '/whois' not in ev['text']:
        fail('/whois without a name: %r (want code usage)' % ev)
    bob.send('/trust nobody')
    ev = event(bob, 'error')
    if ev['code'] != 'unknown_user' or ev['text'] != 'no user nobody':
        fail('/trust nobody: %r (want code unknown_user)' % ev)

    bob.send('/dial alice')
    ev = event(bob, 'connected', name='alice')
    if ev['path'] != 'direct':
        fail('connected: %r' % ev)
    event(bob, 'current', name='alice')
    event(alice, 'connected', name='bob')
    event(alice, 'current', name='bob')

    # Text as a script would want it back, and text a hostile peer could
    # send: controls, quotes, backslashes, U+2028, invalid UTF-8 bytes
    # (surrogateescape: the harness writes them raw to bob's stdin).
    cases = [
        ('hello alice', 'hello alice'),
        ('quote " backslash \\ slash / tab\tend', 'quote " backslash \\ slash / tab\tend'),
        ('bell\x07 esc\x1b[31m del\x7f nul-free', 'bell\x07 esc\x1b[31m del\x7f nul-free'),
        ('Émile 😀 山田 \u2028 \u0085', 'Émile 😀 山田 \u2028 \u0085'),
        ('bad \udcff \udcc0\udcaf \udced\udca0\udc80 x', 'bad \ufffd \ufffd\ufffd \ufffd\ufffd\ufffd x'),
        ('cut \udce2\udc82', 'cut \ufffd\ufffd'),
    ]
    for seq, (sent, want) in enumerate(cases, 1):
        bob.send(sent)
        ev = event(alice, 'message', **{'from': 'bob'})
        if ev['text'] != want:
            fail('message text %r, want %r (sent %r)' % (ev['text'], want, sent))
        if not isinstance(ev['id'], int) or not isinstance(ev['time'], int) or ev['time'] < 10**12:
            fail('message id/time: %r' % ev)
        s = event(bob, 'sent', to='alice', seq=seq)
        if s['time'] != ev['time']:
            fail('sent time %r != message time %r' % (s['time'], ev['time']))
        d = event(bob, 'delivered', to='alice', seq=seq)
        # ts: microseconds; "time" (the sender's, in ms) is taken when the
        # message is queued, just before the sent event is stamped.
        if not 0 <= s['ts'] // 1000 - s['time'] <= 1000 or d['ts'] < s['ts']:
            fail('ts of sent %r / delivered %r against time %r' % (s['ts'], d['ts'], s['time']))
    # What alice printed for the hostile text is escaped, never raw.
    for l in alice.lines:
        if any(c in l for c in '\x07\x1b\x7f\u2028\u0085'):
            fail('a raw control character reached stdout: %r' % l)
    for l in alice.lines:
        if '"type":"message"' in l and 'esc' in l and '\\u001b' not in l:
            fail('ESC not written as \\u001b: %r' % l)

    alice.send('/msg bob reply')
    event(bob, 'message', **{'from': 'alice', 'text': 'reply'})
    event(alice, 'delivered', to='bob', seq=1)

    bob.send('/dial nobody')
    ev = event(bob, 'error', code='unknown_user')
    if ev['text'] != 'no user nobody':
        fail('unknown_user: %r' % ev)

    bob.send('/dial alice')
    event(bob, 'current', name='alice')
    bob.send('/bye')
    event(bob, 'closed', name='alice', reason='you_bye')
    event(alice, 'closed', name='bob', reason='bye')

    t.kill()
    ev = event(alice, 'tracker_lost')
    if not isinstance(ev['retry_ms'], int) or not ev['reason'] or ev['repeat'] is not False \
            or ev['was_registered'] is not True or ev['tracker'] != t.addr:
        fail('tracker_lost: %r' % ev)
    # Each failed retry is an event too, marked as a repeat of that loss.
    # (the first retry's reason, cannot connect, is news after "closed the
    # connection"; the second is a repeat of it).
    again = event(alice, 'tracker_lost', timeout=15)
    if again['repeat'] is not False or not again['reason'].startswith('cannot connect to '):
        fail('the first failed retry: %r (want repeat false, cannot connect)' % again)
    third = event(alice, 'tracker_lost', timeout=15)
    if third['repeat'] is not True or third['reason'] != again['reason']:
        fail('the second failed retry: %r (want a repeat of %r)' % (third, again['reason']))
    quit_json(alice)
    quit_json(bob)
    check_lines(alice, start_us)
    check_lines(bob, start_us)


def test_json_flag_is_documented():
    out = subprocess.run([os.path.join(BUILD, 'parley'), '--help'], stdout=subprocess.PIPE,
                         timeout=10).stdout.decode()
    if not re.search(r'--ui line\|tui\|json', out):
        fail('--help does not list --ui json:\n' + out)
    bad = subprocess.run([os.path.join(BUILD, 'parley'), '--user', 'x', '--ui', 'xml'],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
    if bad.returncode != 2 or b'json' not in bad.stderr:
        fail('--ui xml: status %d, %r' % (bad.returncode, bad.stderr))


def test_json_bot_in_shell_answers():
    """The README's bot: contrib/parley-bot.sh, jq in a shell loop."""
    if not shutil.which('jq'):
        fail('jq is not installed (make deps installs it)')
    t = Tracker()
    carol = jpeer('carol', t)
    registered(carol)
    home = tempdir('parley-bot-')
    script = os.path.join(ROOT, 'contrib', 'parley-bot.sh')
    env = dict(os.environ, PEER=os.path.join(BUILD, 'parley'))
    bot = subprocess.Popen(['sh', script, '--user', 'bot', '--tracker', t.addr, '--home', home],
                           env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, start_new_session=True)

    def stop():
        if bot.poll() is None:
            os.killpg(bot.pid, signal.SIGKILL)
        bot.wait(10)
    on_cleanup(stop)
    event(carol, 'presence', name='bot', online=True)
    texts = ['hello bot', 'what about "quotes" and \\backslashes\\?', 'ünïcödé 👋']
    for text in texts:
        carol.send('/msg bot ' + text)
        event(carol, 'message', **{'from': 'bot', 'text': 'you said: ' + text})
    os.killpg(bot.pid, signal.SIGTERM)
    try:
        bot.wait(15)
    except subprocess.TimeoutExpired:
        fail('the bot did not stop on SIGTERM')
    err = bot.stderr.read().decode(errors='replace')
    if any(m in err for m in SANITIZER_MARKS):
        fail('bot peer: sanitizer output:\n' + err)
    quit_json(carol)
    check_lines(carol)
    t.stop()


def test_chat_started_again_says_connected_before_the_message():
    """After /bye a line typed to the same user starts the conversation
    again: the link comes up first, so `connected` comes before the `sent`
    of that line (the terminal UI shows them in this order), and the line
    arrives once.  A line to an offline user is shown when the dial fails."""
    t = Tracker()
    alice, bob = jpeer('alice', t), jpeer('bob', t)
    registered(alice)
    registered(bob)
    alice.send('/dial bob')
    event(alice, 'connected', name='bob')
    alice.send('one')
    event(alice, 'delivered', to='bob', seq=1)
    for who in (alice, bob):   # either side's bye
        who.send('/bye')
        event(alice, 'closed', name='bob')
        mark = len(alice.lines)
        alice.send('/msg bob again after %s bye' % who.name)
        ev = event(alice, 'delivered', to='bob')
        kinds = [json.loads(l)['type'] for l in alice.lines[mark:]]
        if kinds[:3] != ['connected', 'sent', 'delivered']:
            fail('after %s\'s /bye: events %r, want connected, sent, delivered first'
                 % (who.name, kinds))
        event(bob, 'message', text='again after %s bye' % who.name)
        if ev['seq'] != json.loads(alice.lines[mark + 1])['seq']:
            fail('sent and delivered numbers differ: %r' % alice.lines[mark:])
    quit_json(bob)
    event(alice, 'closed', name='bob', reason='bye')
    alice.send('/msg bob nobody home')
    ev = event(alice, 'sent', to='bob', text='nobody home', timeout=5)
    quit_json(alice)
    t.stop()


if __name__ == '__main__':
    runner.main(globals())

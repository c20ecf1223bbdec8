"""test_chat: real peers talking to each other through direct links: both
ways, several conversations at once, queued messages, /bye, echo, dial
failures, and the exact text of what arrives."""
import os
import re
import signal
import socket
import subprocess
import time

import runner
from procs import (BUILD, Peer, Proc, Tracker, connect, fail, on_cleanup, shown, start_peers,
                   tempdir)
from sodium import Key
from wire import Raw


def esc(text):
    return re.escape(shown(text))


def test_two_peers_chat_both_ways():
    t = Tracker()
    alice, bob = start_peers(t.addr, 'alice', 'bob')
    alice.send('/dial bob')
    alice.expect(r'^connected bob direct$', 15)
    alice.expect(r'^current bob$')
    bob.expect(r'^connected alice direct$', 15)
    bob.expect(r'^current alice$')   # bob had no conversation: this one becomes current
    texts_a = ['hello bob', 'with  two spaces and trailing space ', 'Émile à la crème brûlée',
               'emoji 😀🎉 and 山田', 'tab\there']
    texts_b = ['hi alice', 'Ça va très bien — merci !', '👍', 'x' * 3000]
    for i, text in enumerate(texts_a, 1):
        alice.send(text)
        bob.expect(r'^msg alice: %s$' % esc(text))
        alice.expect(r'^delivered bob #%d$' % i)
    for i, text in enumerate(texts_b, 1):
        bob.send(text)          # current conversation: alice
        alice.expect(r'^msg bob: %s$' % esc(text))
        bob.expect(r'^delivered alice #%d$' % i)
    # And both at once, interleaved.
    for i in range(10):
        alice.send('a%d' % i)
        bob.send('b%d' % i)
    for i in range(10):
        bob.expect(r'^msg alice: a%d$' % i)
        alice.expect(r'^msg bob: b%d$' % i)
    alice.expect(r'^delivered bob #%d$' % (len(texts_a) + 10))
    bob.expect(r'^delivered alice #%d$' % (len(texts_b) + 10))
    for p, other in ((alice, 'bob'), (bob, 'alice')):
        for i in range(10):
            if p.count(r'^msg %s: %s%d$' % (other, other[0], i)) != 1:
                fail('%s saw message %s%d %d times' % (p.name, other[0], i,
                                                       p.count(r'^msg %s: %s%d$' % (other, other[0], i))))
    alice.quit()
    bob.quit()
    t.stop()


def test_text_escaping():
    t = Tracker()
    alice, bob = start_peers(t.addr, 'alice', 'bob')
    connect(alice, bob)
    cases = ['back\\slash', '\\x41 is not A', 'bell\x07 esc\x1b[31m', 'del\x7f']
    for text in cases:
        alice.send('/msg bob ' + text)
        bob.expect(r'^msg alice: %s$' % esc(text))
    # The terminal never sees a raw escape byte.
    for l in bob.lines:
        if '\x1b' in l or '\x07' in l:
            fail('bob printed a raw control character: %r' % l)
    alice.quit()
    bob.quit()
    t.stop()


def test_three_peers_two_conversations():
    t = Tracker()
    alice, bob, carol = start_peers(t.addr, 'alice', 'bob', 'carol')
    connect(alice, bob)
    alice.expect(r'^current bob$')
    connect(alice, carol)
    alice.expect(r'^current carol$')
    carol.expect(r'^current alice$')
    n = 8
    for i in range(n):
        alice.send('/msg bob to-bob-%d' % i)
        alice.send('/msg carol to-carol-%d' % i)
        bob.send('bob-says-%d' % i)        # bob's current: alice
        carol.send('carol-says-%d' % i)    # carol's current: alice
    for i in range(n):
        bob.expect(r'^msg alice: to-bob-%d$' % i)
        carol.expect(r'^msg alice: to-carol-%d$' % i)
        alice.expect(r'^msg bob: bob-says-%d$' % i)
        alice.expect(r'^msg carol: carol-says-%d$' % i)
    alice.expect(r'^delivered bob #%d$' % n)
    alice.expect(r'^delivered carol #%d$' % n)
    bob.expect(r'^delivered alice #%d$' % n)
    carol.expect(r'^delivered alice #%d$' % n)
    # A last round trip on each link, so any duplicate would have arrived.
    for p, q in ((bob, carol), (carol, bob)):
        p.send('marker')
        alice.expect(r'^msg %s: marker$' % p.name)
    alice.send('/msg bob marker')
    bob.expect(r'^msg alice: marker$')
    alice.send('/msg carol marker')
    carol.expect(r'^msg alice: marker$')
    bob.assert_none(r'to-carol|carol-says|^msg carol', 'carol\'s messages at bob')
    carol.assert_none(r'to-bob|bob-says|^msg bob', 'bob\'s messages at carol')
    for i in range(n):
        for p, rx in ((bob, r'^msg alice: to-bob-%d$' % i), (carol, r'^msg alice: to-carol-%d$' % i),
                      (alice, r'^msg bob: bob-says-%d$' % i),
                      (alice, r'^msg carol: carol-says-%d$' % i)):
            if p.count(rx) != 1:
                fail('%s: /%s/ seen %d times, want once' % (p.name, rx, p.count(rx)))
    # alice's current conversation did not move with incoming messages.
    alice.send('still current')
    carol.expect(r'^msg alice: still current$')
    for p in (alice, bob, carol):
        p.quit()
    t.stop()


def test_message_queued_before_connection():
    t = Tracker()
    alice, bob = start_peers(t.addr, 'alice', 'bob')
    # Both lines go out at once: the message is typed before the link is up.
    alice.send('/dial bob\n/msg bob hi')
    bob.expect(r'^msg alice: hi$', 15)
    alice.expect(r'^delivered bob #1$', 15)
    alice.expect(r'^connected bob direct$')
    # Round trip to flush, then check it was shown once.
    alice.send('/msg bob after')
    bob.expect(r'^msg alice: after$')
    if bob.count(r'^msg alice: hi$') != 1:
        fail('bob saw the queued message %d times' % bob.count(r'^msg alice: hi$'))
    alice.quit()
    bob.quit()
    t.stop()


def test_msg_without_dial_queues_in_order():
    t = Tracker()
    alice, bob = start_peers(t.addr, 'alice', 'bob')
    alice.send('\n'.join('/msg bob q%d' % i for i in range(1, 6)))
    for i in range(1, 6):
        bob.expect(r'^msg alice: q%d$' % i, 15)
        alice.expect(r'^delivered bob #%d$' % i, 15)
    got = [l for l in bob.lines if l.startswith('msg alice: q')]
    if got != ['msg alice: q%d' % i for i in range(1, 6)]:
        fail('queued messages arrived as %r' % got)
    # /msg does not change the current conversation: alice has none.
    alice.assert_none(r'^current ')
    alice.send('a plain line')
    alice.expect(r'^error: ')
    alice.quit()
    bob.quit()
    t.stop()


def test_plain_line_without_conversation():
    t = Tracker()
    alice = Peer('alice', t.addr)
    alice.registered()
    alice.send('hello?')
    alice.expect(r'^error: \S')
    alice.quit()
    t.stop()


def test_dial_already_connected_makes_current():
    t = Tracker()
    alice, bob, carol = start_peers(t.addr, 'alice', 'bob', 'carol')
    connect(alice, bob)
    alice.expect(r'^current bob$')
    connect(alice, carol)
    alice.expect(r'^current carol$')
    alice.send('/dial bob')
    alice.expect(r'^current bob$')
    alice.send('back to bob')
    bob.expect(r'^msg alice: back to bob$')
    if alice.count(r'^connected bob direct$') != 1:
        fail('dialing a connected peer made a new link: %r' % alice.lines)
    carol.assert_none(r'back to bob')
    for p in (alice, bob, carol):
        p.quit()
    t.stop()


def test_dial_case_insensitive_name():
    t = Tracker()
    alice, bob = start_peers(t.addr, 'alice', 'Bob')
    alice.send('/dial BOB')
    alice.expect(r'^connected Bob direct$', 15)
    bob.expect(r'^connected alice direct$', 15)
    alice.send('hi Bob')
    bob.expect(r'^msg alice: hi Bob$')
    alice.quit()
    bob.quit()
    t.stop()


def test_bye_closes_both_sides():
    t = Tracker()
    alice, bob = start_peers(t.addr, 'alice', 'bob')
    connect(alice, bob)
    alice.send('before bye')
    bob.expect(r'^msg alice: before bye$')
    alice.send('/bye')
    alice.expect(r'^closed bob: you said bye$')
    bob.expect(r'^closed alice: bye$')
    bob.assert_none(r'^closed alice: connection lost$')
    alice.assert_none(r'^closed bob: connection lost$')
    # No current conversation any more on alice's side.
    alice.send('into the void')
    alice.expect(r'^error: ')
    # A new conversation can start again afterwards.
    alice.send('/msg bob again')
    bob.expect(r'^msg alice: again$', 15)
    alice.quit()
    bob.quit()
    t.stop()


def test_bye_from_acceptor():
    t = Tracker()
    alice, bob = start_peers(t.addr, 'alice', 'bob')
    connect(alice, bob)
    bob.expect(r'^current alice$')
    bob.send('/bye')
    bob.expect(r'^closed alice: you said bye$')
    alice.expect(r'^closed bob: bye$')
    alice.quit()
    bob.quit()
    t.stop()


def test_bye_without_conversation():
    t = Tracker()
    alice = Peer('alice', t.addr)
    alice.registered()
    alice.send('/bye')
    alice.expect(r'^error: ')
    alice.quit()
    t.stop()


def test_echo_peer():
    t = Tracker()
    echo = Peer('echo', t.addr, echo=True)
    echo.registered()
    alice = Peer('alice', t.addr)
    alice.registered()
    for text in ('ping 1', 'Émile 😀', 'spaces  inside'):
        alice.send('/msg echo ' + text)
        alice.expect(r'^msg echo: %s$' % esc(text), 15)
    alice.quit()
    echo.quit()
    t.stop()


def test_tracker_from_parley_conf():
    """HOME/parley.conf's tracker setting is used without --tracker (line
    mode too), and --tracker wins over it."""
    t = Tracker()
    home = tempdir('parley-peer-')
    with open(os.path.join(home, 'parley.conf'), 'w') as f:
        f.write('# the tracker we use\ntracker = %s\n' % t.addr)
    alice = Peer('alice', None, home=home)
    alice.expect(r'^registered alice \(tracker %s, ' % re.escape(t.addr), 15)
    alice.quit()
    # --tracker wins: a port nobody listens on, so it never registers.
    dead = socket.socket()
    dead.bind(('127.0.0.1', 0))
    port = dead.getsockname()[1]
    alice = Peer('alice', '127.0.0.1:%d' % port, home=home)
    alice.expect(r'^error: cannot reach the tracker 127\.0\.0\.1:%d ' % port, 15)
    alice.kill()
    dead.close()
    t.stop()


def test_dial_unknown_name():
    t = Tracker()
    alice = Peer('alice', t.addr)
    alice.registered()
    # An error at once, before any "current" line, and the current
    # conversation stays as it was (none): the next plain line goes nowhere.
    alice.send('/dial nobody')
    line = alice.expect(r'^(error: |current ).*', 15).group(0)
    if line != 'error: no user nobody':
        fail('/dial nobody: want "error: no user nobody" first, got %r' % line)
    alice.send('hello?')
    alice.expect(r'^error: no current conversation', 15)
    alice.send('/msg ghost boo')
    alice.expect(r'^error: no user ghost; 1 message to ghost not sent$', 15)
    alice.send('/whois nobody')
    alice.expect(r'^error: no user nobody$', 15)
    alice.quit()
    t.stop()


def test_dial_offline_name():
    t = Tracker()
    alice, bob = start_peers(t.addr, 'alice', 'bob')
    alice.expect(r'^online bob$')
    bob.quit()
    alice.expect(r'^offline bob$')
    alice.send('/dial bob')
    alice.expect(r'^error: cannot reach bob: bob is offline$', 15)
    alice.quit()
    t.stop()


def test_dial_bad_name():
    t = Tracker()
    alice = Peer('alice', t.addr)
    alice.registered()
    alice.send('/dial ' + 'x' * 33)
    alice.expect(r'^error: ')
    alice.send('/list')
    alice.expect(r'^users 1: alice$')
    alice.quit()
    t.stop()


def test_dial_endpoint_unreachable():
    """bob is online (a raw client) but advertises only a port where nothing
    listens: the dial fails with 'no endpoint answered'."""
    t = Tracker()
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    dead = s.getsockname()[1]
    s.close()           # a port that was just free and is closed again
    bob = Raw(t.addr, label='raw bob')
    bob.must_register('bob', endpoints=['127.0.0.1:%d' % dead])
    alice = Peer('alice', t.addr)
    alice.registered()
    alice.send('/dial bob')
    alice.expect(r'^error: cannot reach bob: no endpoint answered \(tried \d+\)$', 30)
    alice.send('/list')
    alice.expect(r'^users 2: alice bob$')
    alice.quit()
    t.stop()


def test_dial_impostor_fails_authentication():
    """mallory registered key K1, but whoever answers at mallory's endpoint
    presents key K2: the dial must fail authentication, never connect."""
    t = Tracker()
    lsock = socket.socket()
    lsock.bind(('127.0.0.1', 0))
    lsock.listen(4)
    on_cleanup(lsock.close)
    ep = '127.0.0.1:%d' % lsock.getsockname()[1]
    mallory = Raw(t.addr, label='raw mallory')
    mallory.must_register('mallory', endpoints=[ep])
    alice = Peer('alice', t.addr)
    alice.registered()
    alice.send('/dial mallory')
    lsock.settimeout(15)
    conn, _ = lsock.accept()
    link = Raw.from_socket(conn, label='impostor link')
    hello = link.recv_type('hello')
    if hello.get('role') != 'chat' or hello.get('name') != 'alice' or \
            hello.get('to') != 'mallory' or len(hello.get('nonce', b'')) != 32:
        fail('dialer hello is wrong: %r' % hello)
    k2 = Key()
    link.send({'t': 'hello', 'v': 2, 'role': 'chat', 'name': 'mallory', 'key': k2.pk,
               'nonce': os.urandom(32), 'ekey': os.urandom(32)})
    link.send({'t': 'auth', 'sig': k2.sign_auth(b'\x00' * 32, 'A', b'\x00' * 24),
               'header': b'\x00' * 24})
    alice.expect(r'^error: cannot reach mallory: authentication failed: \S', 20)
    alice.assert_none(r'^connected mallory')
    # alice told the impostor why, and closed.
    frames = link.expect_closed()
    errs = [f for f in frames if f.get('t') == 'error']
    if errs and errs[0].get('code') not in ('bad_signature', 'not_found'):
        fail('impostor got %r' % errs)
    alice.quit()
    t.stop()


def test_help():
    t = Tracker()
    alice = Peer('alice', t.addr)
    alice.registered()
    alice.send('/help')
    for cmd in ('list', 'dial', 'msg', 'bye', 'quit', 'help'):
        alice.expect(r'^  /%s\b' % cmd)
    alice.send('/nosuchcommand')
    alice.expect(r'^error: ')
    alice.quit()
    t.stop()


def test_simultaneous_dial():
    """Both dial at once: one link survives, messages flow, each once."""
    t = Tracker()
    alice, bob = start_peers(t.addr, 'alice', 'bob')
    alice.send('/dial bob')
    bob.send('/dial alice')
    alice.expect(r'^connected bob direct$', 15)
    bob.expect(r'^connected alice direct$', 15)
    for i in range(5):
        alice.send('/msg bob a%d' % i)
        bob.send('/msg alice b%d' % i)
    for i in range(5):
        bob.expect(r'^msg alice: a%d$' % i, 15)
        alice.expect(r'^msg bob: b%d$' % i, 15)
    alice.expect(r'^delivered bob #5$', 15)
    bob.expect(r'^delivered alice #5$', 15)
    alice.send('/msg bob end')
    bob.expect(r'^msg alice: end$')
    bob.send('/msg alice end')
    alice.expect(r'^msg bob: end$')
    for p, o, c in ((alice, 'bob', 'b'), (bob, 'alice', 'a')):
        for i in range(5):
            k = p.count(r'^msg %s: %s%d$' % (o, c, i))
            if k != 1:
                fail('%s saw %s%d %d times' % (p.name, c, i, k))
    alice.quit()
    bob.quit()
    t.stop()


def test_quit_on_eof():
    t = Tracker()
    alice = Peer('alice', t.addr)
    alice.registered()
    alice.proc.p.stdin.close()
    alice.expect(r'^bye$')
    rc = alice.proc.wait_exit(10)
    alice.proc.wait_output_done()
    alice.proc.assert_clean()
    if rc != 0:
        fail('EOF on stdin: exit status %s, want 0' % rc)
    t.stop()


def test_quit_says_bye():
    """/quit (and end of input) end the open conversations with bye: the
    other side hears bye, not a lost connection."""
    t = Tracker()
    alice, bob = start_peers(t.addr, 'alice', 'bob')
    connect(alice, bob)
    alice.send('last words')
    bob.expect(r'^msg alice: last words$')
    alice.expect(r'^delivered bob #1$')
    alice.quit()
    bob.expect(r'^closed alice: bye$', 10)
    bob.assert_none(r'^closed alice: connection lost$')
    bob.quit()
    t.stop()


def test_link_timeout_notices_a_vanished_peer():
    """A partner that stops answering without closing (here: stopped with
    SIGSTOP, like a machine that lost its network) is noticed within
    --link-timeout: the quiet link is pinged, and nothing comes back."""
    t = Tracker()
    alice = Peer('alice', t.addr, extra_args=['--link-timeout', '2'])
    bob = Peer('bob', t.addr)
    alice.registered()
    bob.registered()
    connect(alice, bob)
    alice.send('/msg bob before')
    bob.expect(r'^msg alice: before$')
    alice.expect(r'^delivered bob #1$')
    bob.proc.signal(signal.SIGSTOP)
    start = time.monotonic()
    try:
        alice.expect(r'^closed bob: connection lost$', 10)
        took = time.monotonic() - start
    finally:
        bob.proc.signal(signal.SIGCONT)
    if took > 4.0:
        fail('a vanished partner was noticed after %.1fs (want about 2 s, --link-timeout 2)' % took)
    bob.expect(r'^closed alice: connection lost$', 10)
    alice.quit()
    bob.quit()
    t.stop()


def test_quiet_link_stays_up():
    """Pings keep a quiet link alive: after four keepalive pings (more than
    --link-timeout without a message) both sides still have the link.
    (bob keeps the default timeout, so alice is the side that pings: with
    equal timeouts either side may, whichever was quiet first.)"""
    t = Tracker()
    alice = Peer('alice', t.addr, extra_args=['--link-timeout', '2', '--log-level', 'debug'])
    bob = Peer('bob', t.addr)
    alice.registered()
    bob.registered()
    connect(alice, bob)
    i = -1
    for _ in range(4):
        _, i = alice.proc.wait_stderr(r'keepalive ping to bob', 5, start=i + 1)
    alice.assert_none(r'^closed bob')
    bob.assert_none(r'^closed alice')
    alice.send('/msg bob still here')
    bob.expect(r'^msg alice: still here$')
    alice.quit()
    bob.quit()
    t.stop()



def test_no_user_flag_goes_by_login_then_last_run():
    """Without --user the peer goes by $USER the first time and says so;
    once registered the name is kept in HOME/user (0600), and the next run
    without --user comes back under it even with another $USER.  A login
    name another key owns gets the name_taken error naming the fix."""
    t = Tracker()
    zoe = Peer('zoe', t.addr, user_flag=False, env={'USER': 'zoe'})
    zoe.proc.wait_stderr(r'^parley: you are zoe: your login name; --user NAME picks another$')
    zoe.registered()
    zoe.quit()
    path = os.path.join(zoe.home, 'user')
    with open(path) as f:
        if f.read() != 'zoe\n':
            fail('%s does not hold the name zoe' % path)
    if os.stat(path).st_mode & 0o777 != 0o600:
        fail('%s has mode %o, want 600' % (path, os.stat(path).st_mode & 0o777))
    again = Peer('zoe', t.addr, user_flag=False, env={'USER': 'yves'}, home=zoe.home,
                 label='peer zoe again')
    again.proc.wait_stderr(r'^parley: you are zoe: the name of your last run; --user NAME '
                           r'picks another$')
    again.registered()
    again.quit()
    # bob's login name is a user another key registered: the usual refusal.
    owner = Peer('bob', t.addr)
    owner.registered()
    thief = Peer('bob', t.addr, user_flag=False, env={'USER': 'bob'}, label='peer bob (other key)')
    thief.expect(r'^error: the name bob is taken by another key .*pick another --user', 15)
    if thief.proc.wait_exit(10) != 1:
        fail('a peer refused its name should exit 1')
    owner.quit()
    t.stop()


def test_no_user_flag_with_an_empty_name_file():
    """An empty HOME/user (a crash between its creation and its write) is
    no name: the login name serves, and registering rewrites the file."""
    t = Tracker()
    home = tempdir('parley-peer-')
    open(os.path.join(home, 'user'), 'w').close()
    p = Peer('xena', t.addr, user_flag=False, env={'USER': 'xena'}, home=home)
    p.proc.wait_stderr(r'^parley: you are xena: your login name; --user NAME picks another$')
    p.registered()
    p.quit()
    with open(os.path.join(home, 'user')) as f:
        if f.read() != 'xena\n':
            fail('the empty HOME/user was not rewritten after registering')
    t.stop()


def test_no_user_flag_and_no_usable_login():
    """Neither --user nor a usable $USER: a usage error naming --user."""
    t = Tracker()
    p = Peer('-', t.addr, user_flag=False, env={'USER': None})
    p.proc.wait_stderr(r'^error: no user name: pass --user NAME')
    if p.proc.wait_exit(10) != 2:
        fail('no user name should exit 2')
    t.stop()


def test_name_taken_said_once_naming_make_runs_home():
    """A name bound to another key: said once (not the tracker's words
    again), naming the home in use; with the default home, when make run
    keeps a key for that name (build/run/home-NAME under the current
    directory, as after `make run NAME=bob`), that home is the fix named."""
    t = Tracker()
    tree = tempdir('parley-tree-')
    demo_home = os.path.join(tree, 'build', 'run', 'home-bob')
    os.makedirs(demo_home)
    owner = Peer('bob', t.addr, home=demo_home)   # make run NAME=bob's key
    owner.registered()
    home = tempdir('parley-home-')                  # $HOME: ~/.parley is another key
    argv = [os.path.join(BUILD, 'parley'), '--user', 'bob', '--tracker', t.addr, '--ui', 'line']
    p = Proc('peer bob (default home)', argv, cwd=tree, env={'HOME': home})
    want = ('error: the name bob is taken by another key (not the one in %s/.parley); make run '
            'keeps bob\'s key in build/run/home-bob: add --home build/run/home-bob, or pick '
            'another --user' % home)
    deadline = time.monotonic() + 15
    while want not in p.out_lines:
        if time.monotonic() > deadline:
            fail('want %r, got:\n  %s' % (want, '\n  '.join(p.out_lines)))
        time.sleep(0.05)
    if p.wait_exit(10) != 1:
        fail('a peer refused its name should exit 1')
    # An explicit --home: no guess, the home in use named; said once.
    other = Peer('bob', t.addr, label='peer bob (--home)')
    m = other.expect(r'^error: .*taken.*$', 15)
    if m.group(0) != ('error: the name bob is taken by another key (not the one in %s); pick '
                      'another --user, or use the --home that holds bob\'s key' % other.home):
        fail('name_taken with --home: %r' % m.group(0))
    if other.proc.wait_exit(10) != 1:
        fail('a peer refused its name should exit 1')
    owner.quit()
    t.stop()


def test_tracker_flag_port_range_and_default_port():
    """--tracker with a port above 65535 is a usage error saying so;
    --tracker without a port is port 5960 (parley.1)."""
    bad = subprocess.run([os.path.join(BUILD, 'parley'), '--user', 'x', '--tracker',
                          '127.0.0.1:99999'], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, timeout=10)
    err = bad.stderr.decode()
    if bad.returncode != 2 or not err.startswith('error: --tracker 127.0.0.1:99999: the port is '
                                                 'out of range (0 to 65535); '):
        fail('--tracker 127.0.0.1:99999 exited %d: %r' % (bad.returncode, err))
    bad = subprocess.run([os.path.join(BUILD, 'parley-tracker'), '--listen', '127.0.0.1:70000'],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
    if bad.returncode != 2 or 'out of range' not in bad.stderr.decode():
        fail('parley-tracker --listen 127.0.0.1:70000 exited %d: %r' % (bad.returncode,
                                                                    bad.stderr.decode()))
    # No port: 5960.  Whatever answers there (nothing, usually), the peer
    # says which address it tried.
    p = Peer('portless%d' % os.getpid(), '127.0.0.1')
    p.expect(r'127\.0\.0\.1:5960', 15)
    p.quit()


if __name__ == '__main__':
    runner.main(globals())

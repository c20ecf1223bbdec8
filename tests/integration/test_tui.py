"""test_tui: the real peer's terminal UI inside tmux, against a real tracker
and real line-mode peers.  What the screen shows is read with capture-pane;
every wait polls it until the expected text appears or a deadline passes.
Each test runs its own tmux server (tmux -L on a unique socket, no config
file), so a user's tmux is never touched; cleanup kills it."""
import os
import re
import shutil
import signal
import subprocess
import time
import uuid

import runner
from procs import (BUILD, Peer, Proc, Skip, Tracker, fail, on_cleanup, sqlite, start_peers,
                   tempdir)

SAN_MARKS = ('AddressSanitizer', 'LeakSanitizer', 'runtime error:')


class Tmux:
    """One tmux server with one session running a command in a w x h pane.
    The command runs under sh, which prints [exited N] when it ends and then
    waits, so the pane stays readable after the peer quit."""

    def __init__(self, argv, w=100, h=30, term='xterm-256color'):
        if not shutil.which('tmux'):
            raise Skip('tmux is not installed (make deps installs it)')
        self.sock = 'parley-test-%d-%s' % (os.getpid(), uuid.uuid4().hex[:8])
        self.session = 'tui-%s' % uuid.uuid4().hex[:8]
        cmd = ' '.join(_sh_quote(a) for a in argv)
        script = 'TERM=%s LANG=C.UTF-8 %s; echo "[exited $?]"; exec sleep 600' % (term, cmd)
        self.socket_path = None
        on_cleanup(self.kill)
        self.tmux('new-session', '-d', '-s', self.session, '-x', str(w), '-y', str(h),
                  'sh', '-c', script)
        self.socket_path = self.fmt('#{socket_path}')

    def tmux(self, *args, check=True):
        p = subprocess.run(['tmux', '-L', self.sock, '-f', '/dev/null'] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
        if check and p.returncode != 0:
            fail('tmux %s failed: %s' % (' '.join(args), p.stderr.decode(errors='replace')))
        return p.stdout.decode('utf-8', errors='replace')

    def kill(self):
        try:
            self.tmux('kill-server', check=False)
        except (OSError, subprocess.TimeoutExpired):
            pass
        # tmux leaves its socket file behind; it is ours, so it goes too.
        if self.socket_path and os.path.basename(self.socket_path) == self.sock:
            try:
                os.unlink(self.socket_path)
            except OSError:
                pass

    def screen(self):
        return self.tmux('capture-pane', '-p', '-t', self.session)

    def fmt(self, f):
        return self.tmux('display-message', '-p', '-t', self.session, f).strip()

    def wait(self, regex, timeout=10, flags=re.M):
        """Polls the pane until regex matches its text; returns the match."""
        rx = re.compile(regex, flags)
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            m = rx.search(text)
            if m:
                return m
            if time.monotonic() > deadline:
                fail('tmux pane: no /%s/ within %ss; the pane shows:\n%s' % (regex, timeout, text))
            time.sleep(0.05)

    def keys(self, *keys):
        self.tmux('send-keys', '-t', self.session, *keys)

    def type(self, text):
        self.tmux('send-keys', '-t', self.session, '-l', text)

    def line(self, text):
        self.type(text)
        self.keys('Enter')

    def click(self, x, y):
        """A left click at 0-based (x, y), as an SGR press and release."""
        self.type('\x1b[<0;%d;%dM\x1b[<0;%d;%dm' % (x + 1, y + 1, x + 1, y + 1))

    def find(self, regex):
        """(column, row) of the first match of regex on the screen."""
        for row, text in enumerate(self.screen().split('\n')):
            m = re.search(regex, text)
            if m:
                return len(text[:m.start()]), row  # one column per character here
        fail('%r not on the screen:\n%s' % (regex, self.screen()))


def _sh_quote(s):
    return "'" + s.replace("'", "'\\''") + "'"


def tui_peer(tracker, name, w=100, h=30, extra=(), term='xterm-256color', home=None):
    """home: the --home of an earlier run (its key, its history.db)."""
    home = home or tempdir('parley-tui-')
    argv = [os.path.join(BUILD, 'parley'), '--user', name, '--tracker', tracker.addr,
            '--home', home] + list(extra)
    tm = Tmux(argv, w, h, term)
    tm.home = home
    return tm


def click_open(tm, peer, me='alice'):
    """Clicks peer's name in the panel and waits for peer to see the
    link up."""
    x, y = tm.find(re.escape(peer.name))
    tm.click(x, y)
    peer.expect(r'^connected %s direct$' % me, 15)


def panel_row(name, num=r'\d+'):
    """A users-panel line: optional marker, the window number (Alt-N) when
    there are windows (num: a regex for it), the name, an optional unread
    count, then the separator."""
    return r'^[ >](?: *(?:%s)? )?%s(?: +(\d+))? *\u2502' % (num, re.escape(name))


def check_exit_clean(tm):
    tm.wait(r'^\[exited 0\]$')
    if tm.fmt('#{alternate_on}') != '0':
        fail('the alternate screen is still on after the peer exited')
    if tm.fmt('#{mouse_any_flag}#{mouse_sgr_flag}') != '00':
        fail('mouse reporting is still on after the peer exited')
    text = tm.screen()
    if any(m in text for m in SAN_MARKS):
        fail('sanitizer report from the TUI peer:\n%s' % text)
    log = os.path.join(tm.home, 'peer.log')
    if os.path.exists(log):
        with open(log, encoding='utf-8', errors='replace') as f:
            bad = [l for l in f if any(m in l for m in SAN_MARKS)]
        if bad:
            fail('sanitizer report in peer.log:\n%s' % ''.join(bad))


def test_tui_click_chat_unread_resize_quit():
    t = Tracker()
    bob, carol = start_peers(t.addr, 'bob', 'carol')
    tm = tui_peer(t, 'alice')
    # The panel lists who is online, the status bar says registered.
    tm.wait(panel_row('bob'))
    tm.wait(panel_row('carol'))
    tm.wait(r'alice \| tracker: connected \| 2 online')
    bob.expect(r'^online alice$')
    # Click bob's name: the conversation opens and the link comes up.
    click_open(tm, bob)
    tm.wait(r'\u2502 bob - direct')
    tm.wait(r'^>2 bob', 5)                       # window 2, open
    tm.line('hello bob, 山田 😀 é')
    bob.expect(r'^msg alice: hello bob, 山田 😀 é$')
    tm.wait(r'\u2713 alice: hello bob')          # delivered mark
    bob.send('hi alice')
    tm.wait(r'bob: hi alice')
    # carol writes while bob's conversation is on screen: unread count 2.
    carol.send('/msg alice one from carol')
    carol.send('/msg alice two from carol')
    carol.expect(r'^delivered alice #2$', 15)
    m = tm.wait(r'^ 3 carol +(\d+) *\u2502')    # window 3: it came after bob's
    if m.group(1) != '2':
        fail('carol\'s unread count is %s, want 2:\n%s' % (m.group(1), tm.screen()))
    # A smaller window keeps the open conversation and its text.
    tm.tmux('resize-window', '-t', tm.session, '-x', '60', '-y', '15')
    tm.wait(r'\u2502 bob - direct')
    tm.wait(r'bob: hi alice')
    tm.wait(panel_row('carol'))
    tm.tmux('resize-window', '-t', tm.session, '-x', '40', '-y', '10')
    tm.wait(r'bob: hi alice')
    # Opening carol's conversation by click clears its count.
    x, y = tm.find(r'carol')
    tm.click(x, y)
    tm.wait(r'\u2502 carol')
    wait_entry(tm, r'^carol: two from carol$')
    tm.line('/quit')
    check_exit_clean(tm)
    bob.expect(r'^closed alice: bye$', 10)  # quitting says bye on open links
    bob.quit()
    carol.quit()
    t.stop()


def test_tui_keyboard_filter_and_sigterm():
    t = Tracker()
    bob, carol = start_peers(t.addr, 'bob', 'carol')
    # tmux's own TERM: the SGR mouse parser of tui_keys.c, not ncurses'.
    tm = tui_peer(t, 'alice', 80, 24, term='tmux-256color')
    tm.wait(panel_row('carol'))
    tm.keys('Tab')                      # empty input line: Tab moves to the panel
    tm.type('car')                      # typing filters the panel
    tm.wait(r'find:car')
    tm.keys('Enter')
    carol.expect(r'^connected alice direct$', 15)
    tm.wait(r'\u2502 carol - direct')
    tm.line('by keyboard')
    carol.expect(r'^msg alice: by keyboard$')
    # History: Up brings the line back.
    tm.keys('Up')
    tm.wait(r'^carol> by keyboard')
    tm.keys('C-u')
    # A click through the non-native SGR parser opens bob.
    click_open(tm, bob)
    tm.wait(r'\u2502 bob - direct')
    pid = int(tm.fmt('#{pane_pid}'))
    peer_pid = _child_pid(pid)
    os.kill(peer_pid, signal.SIGTERM)
    check_exit_clean(tm)
    bob.quit()
    carol.quit()
    t.stop()


def test_tui_paste_is_one_message_and_bye_line():
    t = Tracker()
    bob, = start_peers(t.addr, 'bob')
    tm = tui_peer(t, 'alice', 70, 20)
    tm.wait(panel_row('bob'))
    click_open(tm, bob)
    # A bracketed paste of two lines stays in the input line until Enter.
    tm.type('\x1b[200~first line\rsecond line\x1b[201~')
    tm.wait('first line\u21b5second line')
    bob.expect_none(r'^msg alice', 0.5)
    tm.keys('Enter')
    bob.expect(r'^msg alice: first line\\x0asecond line$')
    if bob.count(r'^msg alice') != 1:
        fail('the paste arrived as %d messages' % bob.count(r'^msg alice'))
    bob.send('/bye')
    tm.wait(r'bob said bye')
    tm.line('/quit')
    check_exit_clean(tm)
    bob.quit()
    t.stop()


# An entry's time (HH:MM:SS) and its mark: your own message's state
# (sending, kept by the tracker, delivered, expired).
STAMP = re.compile(r'^\d\d:\d\d:\d\d ([ \u00b7\u2709\u2713\u2717]) ')
# The line before the first entry of a new day (or of a window whose first
# entry is not from today).
DATE_LINE = re.compile(r'^-- (Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day, \d{1,2} [A-Z][a-z]+ \d{4} --$')
FP = r'[0-9a-f]{4}(?:-[0-9a-f]{4}){5}'


def status_bar(tm):
    """The status bar's text (the row that names the tracker's state)."""
    for row in tm.screen().splitlines():
        if re.match(r'^ \S+ \| tracker: ', row):
            return row.rstrip()
    fail('no status bar on the screen:\n%s' % tm.screen())


def pane_entries(tm):
    """The conversation pane, entry by entry (an entry starts with its
    time): each a list of (column, text) rows, column counted from the
    pane's left edge, text without the spaces before it.  An entry
    scrolled partly off the top is left out."""
    entries = []
    for row in tm.screen().splitlines()[1:]:
        if re.match(r'^ \S+ \| tracker: ', row):
            break
        if '\u2502' not in row:
            continue
        body = row[row.index('\u2502') + 1:].rstrip()
        if DATE_LINE.match(body):
            continue
        if STAMP.match(body):
            entries.append([(0, body)])
        elif body and entries:
            text = body.lstrip(' ')
            entries[-1].append((len(body) - len(text), text))
    return entries


def entry_text(rows):
    """An entry's text as one line: the rows after the time joined by one
    space (where they broke)."""
    return ' '.join([STAMP.sub('', rows[0][1])] + [t for _, t in rows[1:]])


def wait_entry(tm, regex, timeout=10):
    """Polls until an entry of the pane, joined into one line, matches;
    returns its rows."""
    rx = re.compile(regex)
    deadline = time.monotonic() + timeout
    while True:
        for rows in pane_entries(tm):
            if rx.search(entry_text(rows)):
                return rows
        if time.monotonic() > deadline:
            fail('no pane entry /%s/ within %ss; the pane shows:\n%s' % (regex, timeout, tm.screen()))
        time.sleep(0.05)


def wait_until(cond, what, tm, timeout=10):
    """Polls cond() until true; fails with what and the screen."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            fail('%s:\n%s' % (what, tm.screen()))
        time.sleep(0.05)


def check_wrapped(tm, rows, indent, width):
    """Every row after the first starts at the hanging indent (so with no
    space before its text: the spaces at a break are dropped) and fits."""
    for col, text in rows:
        if col + len(text) > width:
            fail('a row is wider than the pane (%d columns): %r\n%s' % (width, text, tm.screen()))
    for col, text in rows[1:]:
        if col != indent:
            fail('a continuation row starts at column %d, want the indent %d: %r\n%s'
                 % (col, indent, text, tm.screen()))


def hang(width, text_col, time_col=len('00:00:00   ')):
    """Where an entry's wrapped rows go: under its text when that leaves
    12 columns (TUI_WRAP_MIN), else under the time."""
    return text_col if width - text_col >= 12 else time_col


def test_tui_wraps_at_spaces_narrow():
    """40 columns: messages, /help and /whois wrap at spaces under a
    hanging indent; a fingerprint and an address are never split; a long
    notice is in the window whole."""
    t = Tracker()
    bob, = start_peers(t.addr, 'bob')
    tm = tui_peer(t, 'alice', 40, 120)
    tm.wait(panel_row('bob'))
    width = 40 - 10 - 1                 # the pane: the panel is 10 columns, then the separator
    click_open(tm, bob)
    tm.wait(r'\u2502 bob - direct')
    said = 'the quick brown fox jumps over the lazy dog and keeps on running far away'
    bob.send(said)
    rows = wait_entry(tm, r'^bob: the quick .* far away$')
    if entry_text(rows) != 'bob: ' + said or len(rows) < 3:
        fail('bob\'s message on %d rows reads %r:\n%s' % (len(rows), entry_text(rows), tm.screen()))
    check_wrapped(tm, rows, hang(width, len('00:00:00   bob: ')), width)   # under the text, past the name
    mine = 'every word of this line stays whole when the line wraps at spaces'
    tm.line(mine)
    bob.expect(r'^msg alice: %s$' % mine)
    rows = wait_entry(tm, r'^alice: every word .* at spaces$')
    if entry_text(rows) != 'alice: ' + mine:
        fail('alice\'s message reads %r:\n%s' % (entry_text(rows), tm.screen()))
    # Under the text while that leaves 12 columns; here (18 of 29) it goes
    # under the time instead.
    check_wrapped(tm, rows, hang(width, len('00:00:00 \u2713 alice: ')), width)

    # /whois: each fingerprint whole on a row (here it fits the pane only
    # from its left edge, past the indent it would not), the same as bob's.
    bob.send('/whois bob')
    own = bob.expect(r'^whois bob pinned none tracker (%s)$' % FP).group(1)
    tm.line('/whois bob')
    rows = wait_entry(tm, r"^bob: pinned key .*tracker's key")
    whole = [text for _, text in rows if re.fullmatch(FP, text)]
    if whole != [own, own]:
        fail('/whois bob: want %s twice, each whole on a row:\n%s' % (own, tm.screen()))
    if any(re.search(r'[0-9a-f]{4}-', text) and not re.fullmatch(FP, text) for _, text in rows):
        fail('/whois bob: a fingerprint is split:\n%s' % tm.screen())

    # /help: every line of it, as line mode prints it, comes back whole
    # from the rows the screen shows (word for word: no word split).
    bob.send('/help')
    bob.expect(r'^  /help ')
    helps = [' '.join(l.split()) for l in bob.lines if l.startswith('  /')]
    tm.line('/clear')                   # room for all of it: /clear empties the window
    wait_until(lambda: not pane_entries(tm), 'the window is not empty after /clear', tm)
    tm.line('/help')
    wait_entry(tm, r'^ *keys +Tab/F2')
    shown_help = {}
    for rows in pane_entries(tm):
        shown_help[' '.join(entry_text(rows).split())] = rows
    for h in helps:
        if h not in shown_help:
            fail('/help line %r is not on the screen whole:\n%s' % (h, tm.screen()))
        check_wrapped(tm, shown_help[h], len('00:00:00   '), width)

    # The tracker goes: the notice is longer than the status bar; the
    # window has it whole, its address on one row.
    port = t.port
    t.stop()
    rows = wait_entry(tm, r'^tracker lost: .*connection refused$', 15)
    if not any('127.0.0.1:%d' % port in text for _, text in rows):
        fail('the tracker\'s address is split:\n%s' % tm.screen())
    check_wrapped(tm, rows, len('00:00:00   '), width)
    tm.line('/quit')
    check_exit_clean(tm)
    bob.quit()


def test_tui_notices_clear_when_over():
    """The status bar's notice goes when what it reported is over: cannot
    reach bob, once bob is connected; tracker lost, once registered again.
    A notice too long for the bar ends in an ellipsis and is whole in the
    window."""
    t = Tracker()
    bob, = start_peers(t.addr, 'bob')
    tm = tui_peer(t, 'alice', 100, 30)
    tm.wait(panel_row('bob'))
    bob.quit()
    tm.wait(r'alice \| tracker: connected \| 0 online')
    tm.line('/dial bob')
    tm.wait(r'\| 0 online \| cannot reach bob: ')
    wait_entry(tm, r'^cannot reach bob: ')
    bob = Peer('bob', t.addr, home=bob.home)   # back, with the same key
    bob.registered()
    bob.send('/dial alice')
    bob.expect(r'^connected alice direct$', 15)
    wait_entry(tm, r'^connected to bob \(direct\)$')
    tm.wait(r'\| 1 online \| Tab: users')       # the notice is gone, the hint is back
    if 'cannot reach' in status_bar(tm):
        fail('"cannot reach bob" stays after bob connected:\n%s' % tm.screen())

    t.stop()
    rows = wait_entry(tm, r'^tracker lost: .*connection refused$', 15)
    cut = tm.wait(r'tracker: reconnecting.* \| (tracker lost: .*)\u2026$').group(1)
    if not entry_text(rows).startswith(cut):
        fail('the window does not have the cut notice %r whole:\n%s' % (cut, tm.screen()))
    t.restart()
    tm.wait(r'alice \| tracker: connected \| 1 online \| Tab: users', 20)
    if 'tracker lost' in status_bar(tm):
        fail('"tracker lost" stays after registering again:\n%s' % tm.screen())
    tm.line('/quit')
    check_exit_clean(tm)
    bob.quit()
    t.stop()


def panel_attrs(tm, name):
    """The SGR attributes (a set of numbers as strings: '1' bold, '2' dim)
    the users panel draws name with, read from capture-pane -e; None when
    name is not in the panel."""
    rx = re.compile(r'^(?:\x1b\[[\d;]*m)*[ >][ \d]*((?:\x1b\[[\d;]*m)*)%s(?:\x1b|\s)'
                    % re.escape(name))
    for row in tm.tmux('capture-pane', '-p', '-e', '-t', tm.session).split('\n'):
        m = rx.match(row)
        if not m:
            continue
        attrs = set()
        for params in re.findall(r'\x1b\[([\d;]*)m', m.group(1)):
            ps = params.split(';')
            i = 0
            while i < len(ps):
                if ps[i] in ('', '0'):
                    attrs.clear()
                elif ps[i] in ('38', '48'):   # a colour: its numbers are no attributes
                    i += 2 if ps[i + 1:i + 2] == ['5'] else 4
                else:
                    attrs.add(ps[i])
                i += 1
        return attrs
    return None


def wait_panel_attr(tm, name, attr, timeout=10):
    """Polls until the panel draws name with SGR attribute attr."""
    deadline = time.monotonic() + timeout
    while True:
        attrs = panel_attrs(tm, name)
        if attrs is not None and attr in attrs:
            return attrs
        if time.monotonic() > deadline:
            fail('the panel draws %s with %s, want %s:\n%s' % (name, attrs, attr, tm.screen()))
        time.sleep(0.05)


def pane_messages(tm):
    """The pane's entries as (mark, text): the mark after the time (' '
    for theirs and for notices), the text joined into one line."""
    return [(STAMP.match(rows[0][1]).group(1), entry_text(rows)) for rows in pane_entries(tm)]


def test_tui_history_at_start():
    """alice chatted with bob, and one message waited for him (kept by the
    tracker's mailbox, \u2709) when she quit.  Started again, her TUI lists
    bob (dimmed: offline) and his window holds the conversation; when bob
    comes back the waiting message reaches him by itself and its mark turns
    to delivered in place (it is never shown twice); bob is drawn as online
    then; /history bob is a block in his window."""
    t = Tracker()
    bob, = start_peers(t.addr, 'bob')
    tm = tui_peer(t, 'alice')
    tm.wait(panel_row('bob'))
    click_open(tm, bob)
    tm.line('hello from before')
    bob.expect(r'^msg alice: hello from before$')
    tm.wait(r'\u2713 alice: hello from before')
    bob.send('and a reply')
    tm.wait(r'bob: and a reply')
    bob.quit()
    tm.wait(r'bob said bye')
    tm.line('waits in the outbox')          # bob is gone: the tracker keeps it
    tm.wait(r'\u2709 alice: waits in the outbox')
    wait_entry(tm, r'^cannot reach bob now: the tracker keeps your messages')
    tm.line('/quit')
    check_exit_clean(tm)
    tm.kill()

    tm = tui_peer(t, 'alice', home=tm.home)
    tm.wait(panel_row('bob'))
    wait_entry(tm, r'^history: 1 conversation kept from before, the most recent with bob; ')
    wait_panel_attr(tm, 'bob', '2')         # dimmed: offline
    tm.wait(r'alice \| tracker: connected \| 0 online')
    if panel_attrs(tm, 'bob') & {'1'}:
        fail('offline bob is drawn bold:\n%s' % tm.screen())
    # From the notices: /history bob 2 opens bob's window, the last
    # messages loaded at start above the block.
    tm.line('/history bob 2')
    tm.wait(r'\u2502 bob - not connected')
    wait_entry(tm, r'^-- end of the history with bob --$')
    said = [m for m in pane_messages(tm) if re.match(r'^(alice|bob): ', m[1])]
    want = [('\u2713', 'alice: hello from before'), (' ', 'bob: and a reply'),
            ('\u2709', 'alice: waits in the outbox'),
            (' ', 'bob: and a reply'), ('\u2709', 'alice: waits in the outbox')]
    if said != want:
        fail('bob\'s window shows %r, want %r:\n%s' % (said, want, tm.screen()))
    texts = [m[1] for m in pane_messages(tm)]
    head = texts.index('-- history with bob: the last 2 messages --')
    if texts[head + 1:head + 4] != ['bob: and a reply', 'alice: waits in the outbox',
                                    '-- end of the history with bob --']:
        fail('the /history block reads %r:\n%s' % (texts[head:], tm.screen()))
    if texts.index('alice: hello from before') > head:
        fail('the messages loaded at start are not above the block:\n%s' % tm.screen())

    bob = Peer('bob', t.addr, home=bob.home)
    bob.registered()
    bob.expect(r'^msg alice: waits in the outbox$', 15)   # from the mailbox, by itself
    tm.wait(r'\u2713 alice: waits in the outbox', 15)
    wait_panel_attr(tm, 'bob', '1')         # online: as the tracker's users are
    if '2' in panel_attrs(tm, 'bob'):
        fail('online bob is still dimmed:\n%s' % tm.screen())
    deadline = time.monotonic() + 5
    while [m for m in pane_messages(tm) if m[1] == 'alice: waits in the outbox'] != \
            [('\u2713', 'alice: waits in the outbox')] * 2:
        if time.monotonic() > deadline:   # the line loaded and its copy in the block, both
            fail('alice\'s waiting message is not shown delivered, twice (loaded, block):\n%s'
                 % tm.screen())
        time.sleep(0.05)
    bob.expect_none(r'^msg alice: (?!waits in the outbox$)', 0.5)   # nothing else comes
    if bob.count(r'^msg alice: waits in the outbox$') != 1:
        fail('bob got the waiting message %d times' % bob.count(r'^msg alice: waits'))
    # bob goes: dimmed again.
    bob.quit()
    wait_panel_attr(tm, 'bob', '2')
    tm.line('/quit')
    check_exit_clean(tm)
    t.stop()


def pane_title(tm):
    """The conversation pane's title row, after the separator."""
    row = tm.screen().splitlines()[0]
    return row[row.index('\u2502') + 1:].strip()


def wait_title(tm, regex, timeout=10):
    wait_until(lambda: re.search(regex, pane_title(tm)), 'the title is not /%s/' % regex, tm,
               timeout)


def test_tui_windows_alt_keys():
    """Windows are numbered as they come, in the users panel (the notices
    are 1); Alt-N (Meta sends Esc then N) shows window N, Alt-Left/Right
    the previous/next, round; a window that is not there is said so on
    the status bar; /bye ends the conversation on screen; the notices
    window sends nothing."""
    t = Tracker()
    bob, carol, dave = start_peers(t.addr, 'bob', 'carol', 'dave')
    tm = tui_peer(t, 'alice', 100, 24)
    tm.wait(panel_row('dave', num=''))
    click_open(tm, bob)
    wait_title(tm, r'^bob - direct$')
    carol.send('/msg alice hello from carol')
    carol.expect(r'^delivered alice #1$', 15)
    tm.wait(r'^>2 bob +\u2502')
    tm.wait(r'^ 3 carol +1 *\u2502')               # carol's window came second
    tm.wait(r'^   dave +\u2502')                 # no window: no number
    tm.keys('M-3')
    wait_title(tm, r'^carol - direct$')
    tm.wait(r'^>3 carol +\u2502')                 # open, and read: the count is gone
    tm.keys('M-1')
    wait_title(tm, r'^parley: notices, window 1')
    tm.keys('Escape', '2')                        # what Meta sends, as ncurses reads it
    wait_title(tm, r'^bob - direct$')
    tm.keys('M-Right')
    wait_title(tm, r'^carol - direct$')
    tm.keys('M-Right')                            # past the last: round to the notices
    wait_title(tm, r'^parley: notices')
    tm.keys('M-Left')
    wait_title(tm, r'^carol - direct$')
    tm.keys('M-Left')
    wait_title(tm, r'^bob - direct$')
    tm.keys('M-7')
    tm.wait(r'\| no window 7: the windows are 1 \(notices\) to 3$')
    wait_title(tm, r'^bob - direct$')
    tm.keys('M-0')                                # Alt-0 is window 10
    tm.wait(r'\| no window 10: ')
    # A lone Esc is not Alt: the panel is left with it.
    tm.keys('F2')
    tm.wait(r'^find:')
    tm.keys('Escape')
    tm.wait(r'^online 3')
    tm.line('to bob, typed in window 2')
    bob.expect(r'^msg alice: to bob, typed in window 2$')
    # carol's window was current last (the message); /bye here ends bob's.
    tm.keys('M-3')
    wait_title(tm, r'^carol - direct$')
    tm.keys('M-2')
    wait_title(tm, r'^bob - direct$')
    tm.line('/bye')
    bob.expect(r'^closed alice: bye$', 10)
    wait_entry(tm, r'^-- you said bye; the conversation is closed --$')
    carol.expect_none(r'^closed alice', 0.5)
    tm.keys('M-1')
    wait_title(tm, r'^parley: notices')
    tm.line('into the notices')
    wait_entry(tm, r'^the notices window sends nothing: ')
    tm.line('/quit')
    check_exit_clean(tm)
    carol.expect(r'^closed alice: bye$', 10)
    for p in (bob, carol, dave):
        p.quit()
    t.stop()


def row_sgr(tm, regex):
    """The row matching regex as capture-pane -e gives it (with its SGR
    escapes), or None."""
    for row in tm.tmux('capture-pane', '-p', '-e', '-t', tm.session).split('\n'):
        if re.search(regex, re.sub(r'\x1b\[[\d;]*m', '', row)):
            return row
    return None


def sgr_of(row, text):
    """The SGR attributes (numbers as strings: '1' bold, '4' underline, '7'
    reverse; colours left out) in force where text first starts in row,
    or None when it is not there."""
    attrs, plain = set(), ''
    off = {'22': ('1', '2'), '24': ('4',), '27': ('7',)}
    for m in re.finditer(r'\x1b\[([\d;]*)m|([^\x1b]+)', row):
        if m.group(2) is not None:
            before = len(plain)
            plain += m.group(2)
            k = plain.find(text)
            if k >= 0:
                return attrs if k >= before else None
            continue
        ps = m.group(1).split(';')
        i = 0
        while i < len(ps):
            p = ps[i]
            if p in ('', '0'):
                attrs.clear()
            elif p in ('38', '48'):   # a colour: its numbers are no attributes
                i += 2 if ps[i + 1:i + 2] == ['5'] else 4
            elif p in off:
                attrs -= set(off[p])
            elif len(p) == 1:
                attrs.add(p)
            i += 1
    return None


def test_tui_search_and_clear():
    """Ctrl-R searches the window on screen as readline does: typed text
    finds the newest line that has it (highlighted, scrolled onto the
    screen), Ctrl-R again an older one, Enter stays there, Esc goes back;
    the line being typed waits.  /search TEXT does the same with TEXT.
    /clear empties the window on screen, not history.db."""
    t = Tracker()
    bob, = start_peers(t.addr, 'bob')
    tm = tui_peer(t, 'alice', 100, 16, term='tmux-256color')
    tm.wait(panel_row('bob'))
    click_open(tm, bob)
    bob.send('an Apple early on')
    bob.send('the needle is here')
    for i in range(30):
        bob.send('filler line %d' % i)
    bob.send('a late apple')
    wait_entry(tm, r'^bob: a late apple$')
    tm.type('a draft')
    tm.keys('C-r')
    tm.wait(r'^search:$')
    tm.type('NEEDLE')                            # case does not matter
    rows = wait_entry(tm, r'^bob: the needle is here$')
    tm.wait(r'\| match 1 of 1; Ctrl-R older')
    row = row_sgr(tm, r'bob: the needle is here')
    if '7' not in (sgr_of(row, 'needle') or ()):
        fail('the match is not highlighted: %r\n%s' % (row, tm.screen()))
    if '7' in (sgr_of(row, 'is here') or ()):
        fail('more than the match is highlighted: %r' % row)
    tm.keys('C-r')
    tm.wait(r'\| match 1 of 1 \(no older one\)')
    tm.keys('Escape')                            # back to where the window was
    wait_entry(tm, r'^bob: a late apple$')
    tm.wait(r'^bob> a draft$')
    if any('needle' in entry_text(r) for r in pane_entries(tm)):
        fail('Esc did not go back:\n%s' % tm.screen())
    # /search: the newest match, then older with Ctrl-R; Enter stays.
    tm.keys('C-u')
    tm.line('/search apple')
    tm.wait(r'^search: apple$')
    tm.wait(r'\| match 2 of 2; ')
    tm.keys('C-r')
    wait_entry(tm, r'^bob: an Apple early on$')
    tm.wait(r'\| match 1 of 2; ')
    tm.keys('Down')
    tm.wait(r'\| match 2 of 2; ')
    tm.keys('Up')
    tm.wait(r'\| match 1 of 2; ')
    tm.keys('Enter')
    tm.wait(r'^bob>$')
    wait_entry(tm, r'^bob: an Apple early on$')
    wait_title(tm, r'more below: PgDn\]$')
    if row_sgr(tm, r'an Apple') and '7' in (sgr_of(row_sgr(tm, r'an Apple'), 'Apple') or ()):
        fail('the highlight stays after the search:\n%s' % tm.screen())
    # /clear: the screen's window is empty; history.db still has it all.
    tm.line('/clear')
    wait_until(lambda: not pane_entries(tm), 'the window is not empty after /clear', tm)
    tm.wait(r'\| cleared on screen only; /history bob brings it back$')
    bob.send('after the clear')
    wait_entry(tm, r'^bob: after the clear$')
    tm.line('/history bob 2')
    wait_entry(tm, r'^-- history with bob: the last 2 messages --$')
    wait_entry(tm, r'^bob: a late apple$')
    tm.line('/quit')
    check_exit_clean(tm)
    bob.quit()
    t.stop()


def bell_flag(tm):
    return tm.fmt('#{window_bell_flag}') == '1'


def bell_reset(tm):
    """Clears tmux's bell flag of the peer's window (selecting another
    window and back does)."""
    if not getattr(tm, 'spare', False):
        tm.tmux('new-window', '-d', '-t', tm.session + ':9', 'sleep 600')
        tm.spare = True
    tm.tmux('select-window', '-t', tm.session + ':9')
    tm.tmux('select-window', '-t', tm.session + ':0')
    if bell_flag(tm):
        fail('the bell flag did not clear')


def test_tui_mention_highlight_and_bell():
    """A message that names you (any case, a whole word) is highlighted and
    rings the bell, even in the window on screen; one that does not, in
    the window on screen, does not ring; "malice" is not "alice"."""
    t = Tracker()
    bob, carol = start_peers(t.addr, 'bob', 'carol')
    tm = tui_peer(t, 'alice', 90, 20)
    tm.wait(panel_row('carol'))
    click_open(tm, bob)
    wait_title(tm, r'^bob - direct$')
    bell_reset(tm)
    bob.send('no name in this one, malice aside')
    wait_entry(tm, r'^bob: no name in this one')
    time.sleep(0.3)
    if bell_flag(tm):
        fail('a message without your name in the window on screen rang the bell')
    row = row_sgr(tm, r'bob: no name')
    if '7' in (sgr_of(row, 'bob') or ()):
        fail('a message without your name is highlighted: %r' % row)
    bob.send('hey ALICE, look at this')
    wait_entry(tm, r'^bob: hey ALICE, look')
    wait_until(lambda: bell_flag(tm), 'no bell for a mention in the window on screen', tm)
    row = row_sgr(tm, r'bob: hey ALICE')
    if '7' not in (sgr_of(row, 'bob') or ()) or '1' not in (sgr_of(row, 'hey') or ()):
        fail('the mention is not highlighted: %r' % row)
    # In another window: its unread count stands out.
    bell_reset(tm)
    carol.send('/msg alice @alice: ping')
    m = tm.wait(r'^ 3 carol +1 *\u2502')
    wait_until(lambda: bell_flag(tm), 'no bell for a mention in another window', tm)
    row = row_sgr(tm, r'^ 3 carol +1')
    if '7' not in (sgr_of(row, '1') or ()):
        fail('the unread count of a mention is not highlighted: %r' % row)
    tm.line('/quit')
    check_exit_clean(tm)
    bob.quit()
    carol.quit()
    t.stop()


def write_conf(home, text):
    os.makedirs(home, exist_ok=True)
    with open(os.path.join(home, 'parley.conf'), 'w') as f:
        f.write(text)


def test_tui_config_file():
    """HOME/parley.conf: colours off, a time format, the bell for mentions
    only, and keys of one's own for search and the windows; the default
    keys keep working."""
    t = Tracker()
    bob, carol = start_peers(t.addr, 'bob', 'carol')
    home = tempdir('parley-tui-')
    write_conf(home, '# my settings\n'
                     '\n'
                     'colors = off\n'
                     'time-format = "%H.%M "\n'
                     'bell mentions\n'
                     'key-search = Ctrl-F\n'
                     'key-next-window = Alt-n\n'
                     'key-prev-window = F5\n')
    tm = tui_peer(t, 'alice', 90, 20, home=home)
    tm.wait(panel_row('carol'))
    click_open(tm, bob)
    bob.send('in the old style')
    tm.wait(r'\u2502\d\d\.\d\d    bob: in the old style')   # "%H.%M " then the mark
    screen = tm.tmux('capture-pane', '-p', '-e', '-t', tm.session)
    if re.search(r'\x1b\[[\d;]*(?:3[0-7]|38;5;\d+)m', screen):
        fail('colors = off, yet the screen has colours:\n%r' % screen)
    bell_reset(tm)
    carol.send('/msg alice nothing for you')
    tm.wait(r'^ 3 carol +1 *\u2502')
    time.sleep(0.3)
    if bell_flag(tm):
        fail('bell = mentions rang for a message without your name')
    carol.send('/msg alice but alice, this')
    tm.wait(r'^ 3 carol +2 *\u2502')
    wait_until(lambda: bell_flag(tm), 'bell = mentions did not ring for a mention', tm)
    tm.keys('M-n')
    wait_title(tm, r'^carol - direct$')
    tm.keys('F5')
    wait_title(tm, r'^bob - direct$')
    tm.keys('M-Right')                           # the default keys stay
    wait_title(tm, r'^carol - direct$')
    tm.keys('C-f')
    tm.wait(r'^search:$')
    tm.type('nothing')
    tm.wait(r'\| match 1 of 1; ')
    tm.keys('Escape')
    tm.wait(r'^carol>$')
    tm.line('/quit')
    check_exit_clean(tm)
    bob.quit()
    carol.quit()
    t.stop()


def test_tui_config_file_errors():
    """A bad line of parley.conf stops the peer at start with the file,
    the line and what would be right, before the screen is taken."""
    t = Tracker()
    cases = [
        ('colors = maybe\n', 1, 'colors maybe is not on or off'),
        ('# ok\nbell = on\ncolour = on\n', 3, 'unknown setting colour; the settings are tracker, colors, '),
        ('time-format =\n', 1, 'time-format needs a value'),
        ('time-format = %H:%M:%S %H:%M:%S %H:%M:%S %H:%M:%S\n', 1,
         'time-format %H:%M:%S %H:%M:%S %H:%M:%S %H:%M:%S gives more than 32 columns'),
        ('key-search = Ctrl-A\n', 1, 'key-search Ctrl-A: Ctrl-A moves to the start of the line'),
        ('key-next-window = Alt-3\n', 1, 'key-next-window Alt-3: Alt and a digit switch windows'),
        ('tracker = 127.0.0.1:99999\n', 1,
         'tracker 127.0.0.1:99999 is not HOST:PORT (the port is out of range'),
    ]
    for text, line, want in cases:
        home = tempdir('parley-tui-')
        write_conf(home, text)
        tm = tui_peer(t, 'alice', 400, 10, home=home)   # the error on one row
        tm.wait(r'^\[exited 1\]$')
        screen = ' '.join(tm.screen().split())
        path = os.path.join(home, 'parley.conf')
        if 'error: %s line %d: %s' % (path, line, want) not in screen or \
                'fix or remove the line' not in screen:
            fail('parley.conf %r: want "%s line %d: %s", the pane shows:\n%s'
                 % (text, path, line, want, tm.screen()))
        if tm.fmt('#{alternate_on}') != '0':
            fail('the screen was taken for a bad parley.conf')
        tm.kill()
    t.stop()


def test_tui_date_lines():
    """Times have seconds; a line with the date goes where the day changes
    between two entries of a window (and above a first entry that is not
    from today)."""
    t = Tracker()
    bob, = start_peers(t.addr, 'bob')
    tm = tui_peer(t, 'alice')
    tm.wait(panel_row('bob'))
    click_open(tm, bob)
    bob.send('from the old days')
    wait_entry(tm, r'^bob: from the old days$')
    tm.line('a reply of today')
    bob.expect(r'^msg alice: a reply of today$')
    tm.wait(r'\u2502\d\d:\d\d:\d\d \u2713 alice: a reply of today')
    tm.line('/quit')
    check_exit_clean(tm)
    tm.kill()
    then = time.mktime((2026, 6, 3, 12, 34, 56, 0, 0, -1))   # a Wednesday, local noon
    sqlite(os.path.join(tm.home, 'history.db'),
           "UPDATE received SET ts = %d WHERE CAST(text AS TEXT) = 'from the old days'"
           % int(then * 1000))
    tm = tui_peer(t, 'alice', home=tm.home)
    tm.wait(panel_row('bob'))
    tm.keys('M-2')
    wait_title(tm, r'^bob - ')
    today = time.localtime()
    want_today = '-- %s, %d %s %d --' % (time.strftime('%A', today), today.tm_mday,
                                         time.strftime('%B', today), today.tm_year)
    def body():
        return [r[r.index('\u2502') + 1:].rstrip() for r in tm.screen().splitlines()[1:]
                if '\u2502' in r]
    wait_until(lambda: '12:34:56   bob: from the old days' in body(), 'no old entry', tm)
    rows = [r for r in body() if r]
    k = rows.index('12:34:56   bob: from the old days')
    if rows[k - 1] != '-- Wednesday, 3 June 2026 --' or k != 1 and rows[0] != rows[k - 1]:
        fail('no date line above the old entry:\n%s' % tm.screen())
    if rows[k + 1] != want_today or not re.match(r'^\d\d:\d\d:\d\d \u2713 alice: a reply of today$',
                                                  rows[k + 2]):
        fail('no date line %r where the day changes:\n%s' % (want_today, tm.screen()))
    tm.line('/quit')
    check_exit_clean(tm)
    bob.quit()
    t.stop()


def test_tui_refuses_without_terminal():
    t = Tracker()
    p = Proc('peer', [os.path.join(BUILD, 'parley'), '--user', 'alice',
                              '--tracker', t.addr, '--home', tempdir(), '--ui', 'tui'],
                     cwd=tempdir())
    rc = p.wait_exit(10)
    p.wait_output_done()
    if rc != 2 or not any('needs a terminal' in l for l in p.err_lines):
        fail('--ui tui without a terminal: status %s, stderr %r' % (rc, p.err_lines))
    t.stop()


class Gate:
    """A TCP forwarder on a port of its own to the tracker at addr, to be
    shut (new connections closed at once, forwarded ones cut) and opened
    again: the peer behind it comes back to the tracker when the test says.
    The port stays bound throughout, so no other process can take it while
    the gate is shut (tests run in parallel)."""

    def __init__(self, addr):
        import socket
        import threading
        self.socket = socket
        host, port = addr.rsplit(':', 1)
        self.upstream = (host, int(port))
        self.ls = socket.socket()
        self.ls.bind(('127.0.0.1', 0))
        self.ls.listen(8)
        self.port = self.ls.getsockname()[1]
        self.addr = '127.0.0.1:%d' % self.port
        self.is_open = True
        self.conns = []
        on_cleanup(self.close)
        threading.Thread(target=self._accept, daemon=True).start()

    def open(self):
        self.is_open = True

    def _accept(self):
        import threading
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            if not self.is_open:
                c.close()
                continue
            try:
                u = self.socket.create_connection(self.upstream, timeout=5)
            except OSError:
                c.close()
                continue
            self.conns += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for x in (a, b):
            try:
                x.shutdown(2)
            except OSError:
                pass

    def shut(self):
        self.is_open = False
        for c in self.conns:
            try:
                c.shutdown(2)
                c.close()
            except OSError:
                pass
        self.conns = []

    def close(self):
        self.shut()
        try:
            self.ls.shutdown(self.socket.SHUT_RDWR)  # wakes the accepting thread
            self.ls.close()
        except OSError:
            pass


def test_tui_no_stray_online_in_a_chat_that_stayed_up():
    """The tracker restarts while alice chats with bob.  alice registers
    again first (bob's way to the tracker is shut), so her list says bob is
    offline; when bob registers again the tracker tells her he is online.
    The panel shows him online again, but the conversation, whose link
    never dropped, gets no "bob is online" line."""
    t = Tracker()
    gate = Gate(t.addr)
    bob = Peer('bob', gate.addr)
    bob.registered()
    tm = tui_peer(t, 'alice')
    tm.wait(panel_row('bob'))
    x, y = tm.find(r'bob')
    tm.click(x, y)
    bob.expect(r'^connected alice direct$', 15)
    wait_entry(tm, r'^connected to bob \(direct\)$')
    gate.shut()
    t.restart()
    bob.expect(r'^tracker lost: ', 15)
    tm.wait(r'alice \| tracker: connected', 20)
    wait_panel_attr(tm, 'bob', '2', 15)        # the list: bob is not there (yet)
    gate.open()
    bob.registered(timeout=20)
    wait_panel_attr(tm, 'bob', '1', 15)        # the push: online again
    tm.line('still linked')
    bob.expect(r'^msg alice: still linked$', 10)
    tm.wait(r'\u2713 alice: still linked')
    texts = [text for _, text in pane_messages(tm)]
    if 'bob is online' in texts:
        fail('a stray "bob is online" in a chat that never dropped:\n%s' % tm.screen())
    if 'connected to bob (direct)' not in texts:
        fail('bob\'s window is not on screen:\n%s' % tm.screen())
    tm.line('/quit')
    check_exit_clean(tm)
    bob.quit()
    t.stop()


def _child_pid(pid, timeout=5):
    """The one child of pid (the peer under the pane's sh)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open('/proc/%d/task/%d/children' % (pid, pid)) as f:
                kids = f.read().split()
        except OSError:
            kids = []
        if kids:
            return int(kids[0])
        time.sleep(0.05)
    fail('no child process under the tmux pane (pid %d)' % pid)


if __name__ == '__main__':
    runner.main(globals())

"""procs: the processes a test runs, and everything a test leaves behind.

The base the other modules of tests/integration/ build on: where the build
is (ROOT, BUILD: $PARLEY_BUILD or build/), how a test fails (fail,
TestFailure) or reports itself skipped (Skip), the cleanup registry
(on_cleanup, tempdir; runner.run_test runs it whatever the outcome), and
the REAL binaries under test:

- Proc: any child process, its stdout and stderr read by threads into line
  lists (shown when a test fails, checked for sanitizer reports);
- Tracker: a tracker in a temp dir on an ephemeral port, whose real port is
  read from its `listening on` log line;
- Peer: a peer in line mode, driven through stdin and read line by line
  from stdout (README.md, "Line mode"); start_peers, connect, shown;
- sqlite: the sqlite3 shell on a tracker's database, as an operator would.

Every wait is on an event (a line, a process exit) with a timeout; nothing
sleeps for a fixed time.  The wire-level clients are in wire.py, the chat
handshake in handshake.py, the NAT lab in natlab.py.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.abspath(os.environ.get('PARLEY_BUILD') or os.path.join(ROOT, 'build'))
SANITIZER_MARKS = ('AddressSanitizer', 'LeakSanitizer', 'runtime error:')
SKIP_STATUS = 77


class Skip(Exception):
    """Raised by a test that cannot run here (reported, never counted as a pass)."""


class TestFailure(AssertionError):
    pass


# ---------------------------------------------------------------- cleanup

_cleanups = []       # callables, run in reverse order after the test
_procs = []          # every Proc, for the failure report and sanitizer check
_lock = threading.Lock()


def on_cleanup(fn):
    with _lock:
        _cleanups.append(fn)
    return fn


def tempdir(prefix='parley-'):
    d = tempfile.mkdtemp(prefix=prefix)
    on_cleanup(lambda: shutil.rmtree(d, ignore_errors=True))
    return d


def fail(msg):
    raise TestFailure(msg)


# ---------------------------------------------------------------- processes

class Proc:
    """A child process whose stdout and stderr are read by threads into
    line lists, so nothing blocks on a full pipe and everything can be shown
    when a test fails."""

    def __init__(self, label, argv, cwd, stdin=True, env=None):
        """env: variables to set (or, with None as the value, unset) in the
        process's environment, on top of this one's."""
        self.label = label
        self.argv = argv
        self.out_lines = []              # every stdout line, in order
        self.err_lines = []
        self.cond = threading.Condition()
        penv = None
        if env:
            penv = dict(os.environ)
            for k, v in env.items():
                if v is None:
                    penv.pop(k, None)
                else:
                    penv[k] = v
        self.p = subprocess.Popen(argv, cwd=cwd, env=penv,
                                  stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        with _lock:
            _procs.append(self)
        on_cleanup(self._reap)
        self._threads = [threading.Thread(target=self._pump, args=(self.p.stdout, self.out_lines),
                                          daemon=True),
                         threading.Thread(target=self._pump, args=(self.p.stderr, self.err_lines),
                                          daemon=True)]
        for t in self._threads:
            t.start()

    def _pump(self, f, lines):
        for raw in iter(f.readline, b''):
            line = raw.decode('utf-8', errors='backslashreplace').rstrip('\n')
            with self.cond:
                lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def _reap(self):
        if self.p.poll() is None:
            self.p.kill()
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for t in self._threads:
            t.join(timeout=2)
        for f in (self.p.stdin, self.p.stdout, self.p.stderr):
            if f:
                try:
                    f.close()
                except OSError:
                    pass

    def alive(self):
        return self.p.poll() is None

    def wait_exit(self, timeout=10):
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            fail('%s did not exit within %ss' % (self.label, timeout))

    def wait_output_done(self, timeout=5):
        for t in self._threads:
            t.join(timeout=timeout)

    def wait_stderr(self, regex, timeout=10, start=0):
        """The first stderr line from index start matching regex."""
        rx = re.compile(regex)
        deadline = time.monotonic() + timeout
        i = start
        with self.cond:
            while True:
                while i < len(self.err_lines):
                    m = rx.search(self.err_lines[i])
                    if m:
                        return m, i
                    i += 1
                if self.p.poll() is not None and not any(t.is_alive() for t in self._threads):
                    fail('%s exited (status %s) before logging /%s/' % (self.label, self.p.returncode,
                                                                         regex))
                left = deadline - time.monotonic()
                if left <= 0:
                    fail('%s: no stderr line matching /%s/ within %ss' % (self.label, regex, timeout))
                self.cond.wait(min(left, 0.5))

    def sanitizer_report(self):
        with self.cond:
            bad = [l for l in self.err_lines if any(m in l for m in SANITIZER_MARKS)]
        return bad

    def assert_clean(self):
        bad = self.sanitizer_report()
        if bad:
            fail('%s: sanitizer output on stderr:\n  %s' % (self.label, '\n  '.join(bad)))

    def signal(self, sig):
        if self.alive():
            self.p.send_signal(sig)

    def dump(self, out=sys.stdout):
        with self.cond:
            out.write('---- %s: %s\n' % (self.label, ' '.join(self.argv)))
            out.write('---- %s status: %s\n' % (self.label, self.p.poll()))
            if self.out_lines:
                out.write('---- %s stdout (%d lines):\n' % (self.label, len(self.out_lines)))
                for l in self.out_lines:
                    out.write('  | %s\n' % l)
            tail = self.err_lines[-80:]
            out.write('---- %s stderr (last %d of %d lines):\n' % (self.label, len(tail),
                                                                   len(self.err_lines)))
            for l in tail:
                out.write('  ! %s\n' % l)


# ---------------------------------------------------------------- tracker

LISTEN_RE = r'listening on (\[[0-9A-Fa-f:.%a-zA-Z]+\]:\d+|[^\s:\[\]]+:\d+)'


class Tracker:
    """A real tracker on an ephemeral port.  .addr is 'HOST:PORT' of its
    first listener, .port its port."""

    def __init__(self, db=None, listen='127.0.0.1:0', ttl=None, extra_args=(), label='tracker',
                 prefix=()):
        self.prefix = list(prefix)  # argv words before the binary (a NAT lab namespace)
        self.dir = tempdir('parley-trk-')
        self.db = db or os.path.join(self.dir, 'tracker.db')
        self.listen = [listen] if isinstance(listen, str) else list(listen)
        self.ttl = ttl
        self.extra_args = list(extra_args)
        self.label = label
        self.generation = 0
        self.proc = None
        self.start()

    def start(self, listen=None):
        if listen is not None:
            self.listen = [listen] if isinstance(listen, str) else list(listen)
        argv = self.prefix + [os.path.join(BUILD, 'parley-tracker')]
        for l in self.listen:
            argv += ['--listen', l]
        argv += ['--db', self.db]
        if self.ttl is not None:
            argv += ['--ttl', str(self.ttl)]
        argv += self.extra_args
        self.generation += 1
        label = self.label if self.generation == 1 else '%s#%d' % (self.label, self.generation)
        self.proc = Proc(label, argv, cwd=self.dir, stdin=False)
        self.addrs = []
        idx = 0
        for _ in self.listen:
            m, idx = self.proc.wait_stderr(LISTEN_RE, timeout=15, start=idx)
            self.addrs.append(m.group(1))
            idx += 1
        self.addr = self.addrs[0]
        self.host, port = self.addr.rsplit(':', 1)
        self.host = self.host.strip('[]')
        self.port = int(port)
        return self

    def connect_addr(self, host=None):
        return '%s:%d' % (host or self.addr.rsplit(':', 1)[0], self.port)

    def stop(self, timeout=10):
        """SIGTERM: must exit 0 with no sanitizer report."""
        self.proc.signal(signal.SIGTERM)
        rc = self.proc.wait_exit(timeout)
        self.proc.wait_output_done()
        self.proc.assert_clean()
        if rc != 0:
            fail('%s exited with status %s after SIGTERM (want 0)' % (self.proc.label, rc))

    def kill(self):
        self.proc.signal(signal.SIGKILL)
        self.proc.wait_exit(10)
        self.proc.wait_output_done()

    def restart(self):
        """Starts again on the same db and the same port(s) (peers reconnect
        to the address they were given)."""
        if self.proc.alive():
            self.stop()
        return self.start(listen=list(self.addrs))

    def log_since(self, idx=0):
        with self.proc.cond:
            return list(self.proc.err_lines[idx:])


# ---------------------------------------------------------------- peer

class Peer:
    """A real peer in line mode.  Lines from stdout are matched with
    expect(), each line consumed at most once, so 'arrived exactly once'
    can be checked with count()."""

    def __init__(self, name, tracker_addr, echo=False, extra_args=(), home=None, label=None,
                 prefix=(), user_flag=True, env=None):
        """prefix: argv words put before the peer binary (for example
        NetLab.exec_prefix('a') of natlab.py, to run it inside a NAT lab
        namespace).  user_flag False: no --user (name is the name the peer
        should pick); env as for Proc."""
        self.name = name
        self.home = home or tempdir('parley-peer-')
        argv = list(prefix) + [os.path.join(BUILD, 'parley')]
        if user_flag:
            argv += ['--user', name]
        if tracker_addr is not None: # None: no --tracker (HOME/parley.conf or the default)
            argv += ['--tracker', tracker_addr]
        argv += ['--home', self.home, '--ui', 'line']
        if echo:
            argv.append('--echo')
        argv += list(extra_args)
        self.proc = Proc(label or 'peer %s' % name, argv, cwd=self.home, env=env)
        self.used = set()       # indexes of stdout lines consumed by expect()

    @property
    def lines(self):
        with self.proc.cond:
            return list(self.proc.out_lines)

    def send(self, line):
        data = (line + '\n').encode('utf-8', errors='surrogateescape')
        try:
            self.proc.p.stdin.write(data)
            self.proc.p.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            fail('%s: cannot write %r to stdin (%s); exited with %s' % (self.proc.label, line, e,
                                                                      self.proc.p.poll()))

    def expect(self, regex, timeout=10):
        """Waits for a not yet consumed stdout line matching regex (re.search;
        anchor with ^...$ for a whole line).  Returns the match."""
        rx = re.compile(regex)
        deadline = time.monotonic() + timeout
        with self.proc.cond:
            while True:
                for i, l in enumerate(self.proc.out_lines):
                    if i not in self.used:
                        m = rx.search(l)
                        if m:
                            self.used.add(i)
                            return m
                out_done = not self._stdout_open()
                if out_done:
                    fail('%s: stdout closed (status %s) without a line matching /%s/; seen:\n  %s'
                         % (self.proc.label, self.proc.p.poll(), regex,
                            '\n  '.join(self.proc.out_lines)))
                left = deadline - time.monotonic()
                if left <= 0:
                    fail('%s: no line matching /%s/ within %ss; seen:\n  %s'
                         % (self.proc.label, regex, timeout, '\n  '.join(self.proc.out_lines)))
                self.proc.cond.wait(min(left, 0.5))

    def _stdout_open(self):
        return self.proc._threads[0].is_alive()

    def count(self, regex):
        rx = re.compile(regex)
        return sum(1 for l in self.lines if rx.search(l))

    def assert_none(self, regex, what=None):
        bad = [l for l in self.lines if re.search(regex, l)]
        if bad:
            fail('%s: unexpected %s:\n  %s' % (self.proc.label, what or 'lines /%s/' % regex,
                                               '\n  '.join(bad)))

    def expect_none(self, regex, timeout):
        """Watches stdout for timeout seconds: fails if a line matching regex
        shows up (an event that must NOT happen)."""
        rx = re.compile(regex)
        deadline = time.monotonic() + timeout
        with self.proc.cond:
            while True:
                for l in self.proc.out_lines:
                    if rx.search(l):
                        fail('%s: unexpected line %r' % (self.proc.label, l))
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self.proc.cond.wait(min(left, 0.5))

    def registered(self, timeout=15):
        return self.expect(r'^registered %s \(tracker \S+, seen as \S+\)$' % re.escape(self.name),
                           timeout)

    def quit(self, timeout=10):
        """/quit: prints bye, exits 0, no sanitizer report."""
        self.send('/quit')
        self.expect(r'^bye$', timeout)
        rc = self.proc.wait_exit(timeout)
        self.proc.wait_output_done()
        self.proc.assert_clean()
        if rc != 0:
            fail('%s exited with status %s after /quit (want 0)' % (self.proc.label, rc))

    def kill(self):
        self.proc.signal(signal.SIGKILL)
        self.proc.wait_exit(10)


def json_event(p, type_, timeout=15, **want):
    """The next unconsumed event of a --ui json peer p of type_ whose fields
    include want."""
    rx = r'^\{"type":"%s"' % type_
    while True:
        m = p.expect(rx, timeout)
        ev = json.loads(m.string)
        if all(ev.get(k) == v for k, v in want.items()):
            return ev


def start_peers(tracker_addr, *names, **kw):
    """Starts the peers one after another, each registered before the next
    starts (so presence order is known)."""
    peers = []
    for n in names:
        p = Peer(n, tracker_addr, **kw)
        p.registered()
        peers.append(p)
    return peers


def connect(a, b, timeout=15):
    """a dials b; both sides see the link come up."""
    a.send('/dial %s' % b.name)
    a.expect(r'^connected %s direct$' % re.escape(b.name), timeout)
    b.expect(r'^connected %s direct$' % re.escape(a.name), timeout)


def shown(text):
    """What line mode prints for a received TEXT: control characters other
    than tab as \\xNN, a backslash as \\\\."""
    out = []
    for ch in text:
        o = ord(ch)
        if ch == '\\':
            out.append('\\\\')
        elif ch != '\t' and (o < 0x20 or o == 0x7f):
            out.append('\\x%02x' % o)
        else:
            out.append(ch)
    return ''.join(out)


def sqlite(path, sql, sep='|'):
    """Runs sql on the database at path with the sqlite3 shell, as an
    operator would; its output lines (columns joined by sep)."""
    out = subprocess.run(['sqlite3', '-batch', '-noheader', '-separator', sep, path, sql],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    if out.returncode != 0:
        fail('sqlite3 %r: %s' % (sql, out.stderr.decode(errors='replace')))
    return out.stdout.decode('utf-8', errors='replace').splitlines()

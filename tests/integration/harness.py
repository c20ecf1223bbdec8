"""harness: what the integration tests are built from.

Everything here runs the REAL binaries of $PARLEY_BUILD (build/tracker and
build/peer) over real loopback sockets:

- Tracker: a tracker process in a temp dir on an ephemeral port, whose real
  port is read from its `listening on` log line;
- Peer: a peer process in line mode, driven through stdin and read line by
  line from stdout (docs: TEAM.md, "Line mode");
- Raw: a bare control-protocol client (frames of msgpack, docs/PROTOCOL.md)
  that can also send broken frames on purpose.

Every wait is on an event (a line, a frame, a process exit) with a timeout;
nothing sleeps for a fixed time.  Every process and temp dir a test creates is
registered here and cleaned up by run_test(), whatever the outcome; on failure
the output of every process is printed so the runner shows it.

A test file ends with `if __name__ == '__main__': harness.main(globals())`
and is run as `python3 test_x.py test_name` (tests/run.py does this).
"""
import ctypes
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import msgpack

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.abspath(os.environ.get('PARLEY_BUILD') or os.path.join(ROOT, 'build'))
SANITIZER_MARKS = ('AddressSanitizer', 'LeakSanitizer', 'runtime error:')
SKIP_STATUS = 77
FRAME_MAX = 64 * 1024


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

    def __init__(self, label, argv, cwd, stdin=True):
        self.label = label
        self.argv = argv
        self.out_lines = []              # every stdout line, in order
        self.err_lines = []
        self.cond = threading.Condition()
        self.p = subprocess.Popen(argv, cwd=cwd,
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
        argv = self.prefix + [os.path.join(BUILD, 'tracker')]
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
                 prefix=()):
        """prefix: argv words put before the peer binary (for example
        netlab.exec_prefix('a') to run it inside a NAT lab namespace)."""
        self.name = name
        self.home = home or tempdir('parley-peer-')
        argv = list(prefix) + [os.path.join(BUILD, 'peer'), '--user', name, '--tracker',
                               tracker_addr, '--home', self.home, '--ui', 'line']
        if echo:
            argv.append('--echo')
        argv += list(extra_args)
        self.proc = Proc(label or 'peer %s' % name, argv, cwd=self.home)
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


# ---------------------------------------------------------------- NAT lab

NETLAB = os.path.join(ROOT, 'tools', 'netlab')


class NetLab:
    """A tools/netlab lab for one test (building one takes about half a
    second), removed by the cleanup whatever happens.  Raises Skip, with
    netlab's reason, when no lab can be built here (not root, no network
    namespaces, no iptables)."""
    TRK_IP, PUB_IP = '203.0.113.10', '203.0.113.20'
    R1_IP, R2_IP = '203.0.113.1', '203.0.113.2'

    def __init__(self, drop_inbound=False):
        chk = subprocess.run([NETLAB, 'check'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        why = chk.stdout.decode(errors='replace').strip().replace('\n', '; ')
        if chk.returncode == SKIP_STATUS:
            raise Skip('the NAT lab cannot be built here: %s' % why)
        if chk.returncode != 0:
            fail('tools/netlab check failed (status %d): %s' % (chk.returncode, why))
        args = [NETLAB, 'up'] + (['--drop-inbound'] if drop_inbound else [])
        up = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        if up.returncode != 0:
            fail('tools/netlab up failed (status %d): %s' % (up.returncode,
                                                             up.stderr.decode(errors='replace')))
        self.prefix = up.stdout.decode().strip()
        on_cleanup(self.down)

    def exec_prefix(self, host):
        return [NETLAB, 'exec', self.prefix, host, '--']

    def down(self):
        subprocess.run([NETLAB, 'down', self.prefix], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60)

    def tracker(self, extra_args=()):
        return Tracker(listen=self.TRK_IP + ':0', extra_args=extra_args,
                       prefix=self.exec_prefix('trk'))

    def peer(self, name, host, tracker, extra_args=(), **kw):
        return Peer(name, tracker.addr, extra_args=extra_args, prefix=self.exec_prefix(host),
                    label='peer %s@%s' % (name, host), **kw)


# ---------------------------------------------------------------- libsodium

class _Sodium:
    def __init__(self):
        self.lib = ctypes.CDLL('libsodium.so.23')
        if self.lib.sodium_init() < 0:
            raise RuntimeError('sodium_init failed')

    def keypair(self):
        pk = ctypes.create_string_buffer(32)
        sk = ctypes.create_string_buffer(64)
        if self.lib.crypto_sign_keypair(pk, sk) != 0:
            raise RuntimeError('crypto_sign_keypair failed')
        return pk.raw, sk.raw

    def sign(self, sk, msg):
        sig = ctypes.create_string_buffer(64)
        siglen = ctypes.c_ulonglong(0)
        if self.lib.crypto_sign_detached(sig, ctypes.byref(siglen), msg,
                                         ctypes.c_ulonglong(len(msg)), sk) != 0:
            raise RuntimeError('crypto_sign_detached failed')
        return sig.raw

    def verify(self, pk, sig, msg):
        return self.lib.crypto_sign_verify_detached(sig, msg, ctypes.c_ulonglong(len(msg)), pk) == 0

    # -- the chat link's session crypto (peer/seal.c, PROTOCOL.md "Chat link")

    def kx_keypair(self):
        pk = ctypes.create_string_buffer(32)
        sk = ctypes.create_string_buffer(32)
        self.lib.crypto_kx_keypair(pk, sk)
        return pk.raw, sk.raw

    def kx_session_keys(self, client, pk, sk, their_pk):
        rx = ctypes.create_string_buffer(32)
        tx = ctypes.create_string_buffer(32)
        fn = self.lib.crypto_kx_client_session_keys if client else \
            self.lib.crypto_kx_server_session_keys
        if fn(rx, tx, pk, sk, their_pk) != 0:
            raise RuntimeError('crypto_kx session keys failed (bad ephemeral key)')
        return rx.raw, tx.raw

    def hash(self, data, key=b'', outlen=32):
        out = ctypes.create_string_buffer(outlen)
        self.lib.crypto_generichash(out, ctypes.c_size_t(outlen), data,
                                    ctypes.c_ulonglong(len(data)), key or None,
                                    ctypes.c_size_t(len(key)))
        return out.raw

    def stream_state(self):
        return ctypes.create_string_buffer(
            self.lib.crypto_secretstream_xchacha20poly1305_statebytes())

    def stream_push_init(self, key):
        st, header = self.stream_state(), ctypes.create_string_buffer(24)
        self.lib.crypto_secretstream_xchacha20poly1305_init_push(st, header, key)
        return st, header.raw

    def stream_pull_init(self, header, key):
        st = self.stream_state()
        if self.lib.crypto_secretstream_xchacha20poly1305_init_pull(st, header, key) != 0:
            raise RuntimeError('secretstream init_pull failed')
        return st

    def stream_push(self, st, m):
        c = ctypes.create_string_buffer(len(m) + 17)
        self.lib.crypto_secretstream_xchacha20poly1305_push(
            st, c, None, m, ctypes.c_ulonglong(len(m)), None, ctypes.c_ulonglong(0),
            ctypes.c_ubyte(0))
        return c.raw

    def stream_pull(self, st, c):
        """The plaintext, or None when c does not authenticate."""
        if len(c) < 17:
            return None
        m = ctypes.create_string_buffer(len(c) - 17 + 1)
        mlen = ctypes.c_ulonglong(0)
        tag = ctypes.c_ubyte(0)
        if self.lib.crypto_secretstream_xchacha20poly1305_pull(
                st, m, ctypes.byref(mlen), ctypes.byref(tag), c, ctypes.c_ulonglong(len(c)),
                None, ctypes.c_ulonglong(0)) != 0:
            return None
        return m.raw[:mlen.value]


_sodium = None


def sodium():
    global _sodium
    if _sodium is None:
        _sodium = _Sodium()
    return _sodium


class Key:
    def __init__(self):
        self.pk, self.sk = sodium().keypair()

    def sign_register(self, nonce, name_bytes):
        return sodium().sign(self.sk, b'parley-register-v1\x00' + nonce + name_bytes)

    def sign_chat(self, their_nonce, my_name_bytes):
        return sodium().sign(self.sk, b'parley-chat-v1\x00' + their_nonce + my_name_bytes)


    def sign_auth(self, th, role, header):
        """A chat auth signature (role 'D' dialer, 'A' acceptor)."""
        return sodium().sign(self.sk, auth_input(th, role, header))


def auth_input(th, role, header):
    return b'parley-chat-v2\x00' + role.encode() + th + header


def verify_chat(pk, sig, my_nonce, their_name_bytes):
    return sodium().verify(pk, sig, b'parley-chat-v1\x00' + my_nonce + their_name_bytes)


CHAT_VERSION = 2


class ChatSession:
    """One side of a chat link's crypto, played by the test: the ephemeral
    key for hello, the transcript hash, the keys, auth, sealing."""

    def __init__(self, key, name):
        self.key, self.name = key, name
        self.nonce = os.urandom(32)
        self.epk, self.esk = sodium().kx_keypair()
        self.tx = self.rx = None

    def hello(self, to=None):
        d = {'t': 'hello', 'v': CHAT_VERSION, 'role': 'chat', 'name': self.name,
             'key': self.key.pk, 'nonce': self.nonce, 'ekey': self.epk}
        if to is not None:
            d['to'] = to
        return d

    @staticmethod
    def _party(nonce, ekey, key, name):
        nb = name.encode('utf-8') if isinstance(name, str) else name
        return nonce + ekey + key + bytes([len(nb)]) + nb

    def derive(self, dialer, their):
        """their: the other side's hello."""
        self.dialer = dialer
        me = self._party(self.nonce, self.epk, self.key.pk, self.name)
        them = self._party(their['nonce'], their['ekey'], their['key'], their['name'])
        self.their_key = their['key']
        self.th = sodium().hash(b'parley-chat-v2\x00' + (me + them if dialer else them + me))
        rx, tx = sodium().kx_session_keys(dialer, self.epk, self.esk, their['ekey'])
        self.rx_key = sodium().hash(rx, key=self.th)
        self.tx, self.header = sodium().stream_push_init(sodium().hash(tx, key=self.th))

    def auth(self):
        return {'t': 'auth', 'sig': self.key.sign_auth(self.th, 'D' if self.dialer else 'A',
                                                      self.header),
                'header': self.header}

    def accept(self, auth):
        """Verifies their auth and starts reading; False when it does not verify."""
        sig, header = auth.get('sig', b''), auth.get('header', b'')
        if not isinstance(header, bytes) or len(header) != 24 or not sodium().verify(
                self.their_key, sig, auth_input(self.th, 'A' if self.dialer else 'D', header)):
            return False
        self.rx = sodium().stream_pull_init(header, self.rx_key)
        return True

    def seal_payload(self, payload):
        return sodium().stream_push(self.tx, payload)

    def seal(self, d):
        """The sealed frame (bytes, length prefix included) carrying map d."""
        return msg({'t': 'sealed', 'c': self.seal_payload(pack_map(d))})

    def open(self, f):
        """The map inside a sealed frame dict; fails the test if it does not
        authenticate."""
        plain = sodium().stream_pull(self.rx, f.get('c', b''))
        if plain is None:
            fail('a sealed frame from the real peer does not authenticate: %r' % f)
        return msgpack.unpackb(plain, raw=False, strict_map_key=False,
                               unicode_errors='surrogateescape')


def chat_handshake(raw, key, name, dialer, to=None, expect_key=None):
    """Runs our half of the chat handshake on raw (a Raw) as the dialer (we
    send hello first, with to) or the acceptor (their hello first); returns
    (SealedLink, their hello)."""
    s = ChatSession(key, name)
    if dialer:
        raw.send(s.hello(to))
        hello = raw.recv_type('hello')
    else:
        hello = raw.recv_type('hello')
        raw.send(s.hello())
    if hello.get('v') != CHAT_VERSION or hello.get('role') != 'chat' or \
            not isinstance(hello.get('nonce'), bytes) or len(hello['nonce']) != 32 or \
            not isinstance(hello.get('ekey'), bytes) or len(hello['ekey']) != 32 or \
            not isinstance(hello.get('key'), bytes) or len(hello['key']) != 32:
        fail('bad chat hello from the real peer: %r' % hello)
    if expect_key is not None and hello['key'] != expect_key:
        fail('%s presented key %r, the tracker has %r' % (hello.get('name'), hello['key'],
                                                           expect_key))
    s.derive(dialer, hello)
    raw.send(s.auth())
    auth = raw.recv_type('auth')
    if not s.accept(auth):
        fail('the real peer\'s auth does not verify: %r' % auth)
    return SealedLink(raw, s), hello


class SealedLink:
    """A chat link after the handshake, with Raw's interface: send() seals
    a map, recv() opens sealed frames (error frames, never sealed, come as
    they are).  raw and session are there for byte-level tests."""

    def __init__(self, raw, session):
        self.raw, self.session = raw, session
        self.label = raw.label

    def send(self, d):
        self.raw.send_bytes(self.session.seal(d))

    def send_bytes(self, data):
        self.raw.send_bytes(data)

    def recv(self, timeout=10):
        f = self.raw.recv(timeout)
        return self.session.open(f) if f.get('t') == 'sealed' else f

    def recv_type(self, t, timeout=10):
        f = self.recv(timeout)
        if f.get('t') != t:
            fail('%s: expected a %r frame, got %r' % (self.label, t, f))
        return f

    def recv_skip_presence(self, timeout=10):
        return self.recv(timeout)

    def expect_closed(self, timeout=10):
        got = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                got.append(self.recv(max(0.01, deadline - time.monotonic())))
            except Closed:
                return got
            except TestFailure:
                fail('%s: connection still open after %ss (frames: %r)' % (self.label, timeout,
                                                                           got))

    def expect_silence(self, timeout):
        self.raw.expect_silence(timeout)

    def close(self):
        self.raw.close()


# ---------------------------------------------------------------- raw client

class RawStr:
    """A msgpack str whose bytes are given as is (may be invalid UTF-8)."""

    def __init__(self, b):
        self.b = b


def _pack_value(v):
    if isinstance(v, RawStr):
        n = len(v.b)
        if n < 32:
            hdr = bytes([0xa0 | n])
        elif n < 256:
            hdr = bytes([0xd9, n])
        elif n < 65536:
            hdr = b'\xda' + struct.pack('>H', n)
        else:
            hdr = b'\xdb' + struct.pack('>I', n)
        return hdr + v.b
    if isinstance(v, dict):
        return pack_map(v)
    if isinstance(v, (list, tuple)):
        n = len(v)
        hdr = bytes([0x90 | n]) if n < 16 else b'\xdc' + struct.pack('>H', n)
        return hdr + b''.join(_pack_value(x) for x in v)
    return msgpack.packb(v, use_bin_type=True)


def pack_map(d):
    n = len(d)
    hdr = bytes([0x80 | n]) if n < 16 else b'\xde' + struct.pack('>H', n)
    return hdr + b''.join(_pack_value(k) + _pack_value(v) for k, v in d.items())


def frame(payload):
    return struct.pack('>I', len(payload)) + payload


def msg(d):
    """A complete frame holding the map d (values may be RawStr)."""
    return frame(pack_map(d))


class Closed(Exception):
    pass


class Raw:
    """A bare TCP client speaking the control protocol, for protocol tests."""

    def __init__(self, addr, timeout=10, label='raw'):
        host, port = addr.rsplit(':', 1)
        host = host.strip('[]')
        self.label = label
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b''
        self.eof = False
        self.frames = []        # every frame received, for failure messages
        self.rx_bytes = bytearray()  # every byte received (what a wiretap sees)
        self.nonce = None
        self.observed = None
        self.key = None
        self.name = None
        self.next_id = 1
        on_cleanup(self.close)

    @classmethod
    def from_socket(cls, sock, label='raw'):
        """Wraps an accepted socket (e.g. a fake peer's chat link)."""
        self = cls.__new__(cls)
        self.label = label
        self.sock = sock
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf, self.eof, self.frames, self.rx_bytes = b'', False, [], bytearray()
        self.nonce = self.observed = self.key = self.name = None
        self.next_id = 1
        on_cleanup(self.close)
        return self

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send_bytes(self, data):
        self.sock.sendall(data)

    def send(self, d):
        self.sock.sendall(msg(d))

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            fail('%s: no frame within the timeout; received so far: %r' % (self.label, self.frames))
        r, _, _ = select.select([self.sock], [], [], left)
        if not r:
            fail('%s: no frame within the timeout; received so far: %r' % (self.label, self.frames))
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b''
        if not data:
            self.eof = True
        self.buf += data
        self.rx_bytes += data

    def recv(self, timeout=10):
        """The next frame as a dict; raises Closed on EOF."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 4:
                n = struct.unpack('>I', self.buf[:4])[0]
                if len(self.buf) >= 4 + n:
                    payload, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
                    obj = msgpack.unpackb(payload, raw=False, strict_map_key=False,
                                          unicode_errors='surrogateescape')
                    self.frames.append(obj)
                    return obj
            if self.eof:
                raise Closed('%s: connection closed (pending %d bytes)' % (self.label, len(self.buf)))
            self._fill(deadline)

    def recv_type(self, t, timeout=10):
        """The next frame, which must be of type t."""
        f = self.recv(timeout)
        if f.get('t') != t:
            fail('%s: expected a %r frame, got %r' % (self.label, t, f))
        return f

    PUSHES = ('presence', 'connect_request', 'relay_offer', 'connect_failed')

    def recv_skip_presence(self, timeout=10):
        """The next frame that is not a push (presence, and the reverse and
        relay requests a real peer's dial sends to the user it dials)."""
        deadline = time.monotonic() + timeout
        while True:
            f = self.recv(max(0.01, deadline - time.monotonic()))
            if f.get('t') not in self.PUSHES:
                return f

    def expect_error(self, code, timeout=10, closed=True, id=None):
        """Skips presence pushes, requires an error frame with this code;
        when closed, the connection must then be closed by the tracker."""
        f = self.recv_skip_presence(timeout)
        if f.get('t') != 'error' or f.get('code') != code:
            fail('%s: expected error %r, got %r' % (self.label, code, f))
        if not isinstance(f.get('msg'), str) or not f['msg']:
            fail('%s: error %r has no human-readable msg: %r' % (self.label, code, f))
        if id is not None and f.get('id') != id:
            fail('%s: error %r should answer request id %r: %r' % (self.label, code, id, f))
        if closed:
            self.expect_closed(timeout)
        return f

    def expect_closed(self, timeout=10):
        """Reads until EOF; returns the frames that came before it."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                got.append(self.recv(max(0.01, deadline - time.monotonic())))
            except Closed:
                return got
            except TestFailure:
                fail('%s: connection still open after %ss (frames: %r)' % (self.label, timeout, got))

    def expect_silence(self, timeout):
        """Nothing may arrive (no frame, no close) for timeout seconds."""
        r, _, _ = select.select([self.sock], [], [], timeout)
        if r:
            data = self.sock.recv(65536, socket.MSG_PEEK)
            fail('%s: expected silence, got %r' % (self.label, data[:200] if data else 'EOF'))

    # -- protocol steps

    def hello(self, v=1, role='peer'):
        self.send({'t': 'hello', 'v': v, 'role': role})
        w = self.recv_type('welcome')
        check_welcome(w)
        self.nonce = w['nonce']
        self.observed = w['observed']
        return w

    def register(self, name, key=None, endpoints=('127.0.0.1:9',), sig=None, hello=True,
                 features=None):
        """Signs and sends register (after hello unless hello=False); returns
        the answer frame (registered or error).  features: the register's
        features list (None: the field is left out, as a protocol-1 peer)."""
        if hello and self.nonce is None:
            self.hello()
        self.key = key or Key()
        nb = name.b if isinstance(name, RawStr) else name.encode('utf-8')
        if sig is None:
            sig = self.key.sign_register(self.nonce, nb)
        d = {'t': 'register', 'name': name, 'key': self.key.pk, 'sig': sig,
             'endpoints': list(endpoints)}
        if features is not None:
            d['features'] = list(features)
        self.send(d)
        return self.recv_skip_presence()

    def must_register(self, name, key=None, endpoints=('127.0.0.1:9',), features=None):
        r = self.register(name, key, endpoints, features=features)
        if r.get('t') != 'registered':
            fail('%s: register %r failed: %r' % (self.label, name, r))
        self.name = r['name']
        return r

    def request(self, d, timeout=10):
        """Sends a request with a fresh id and returns the answer with that id
        (presence pushes in between are skipped)."""
        rid = self.next_id
        self.next_id += 1
        d = dict(d, id=rid)
        self.send(d)
        f = self.recv_skip_presence(timeout)
        if f.get('id') != rid:
            fail('%s: answer to %r has id %r, want %d: %r' % (self.label, d.get('t'), f.get('id'),
                                                              rid, f))
        return f

    def lookup(self, name):
        return self.request({'t': 'lookup', 'name': name})

    def list(self, prefix=None, limit=None, cursor=None):
        d = {'t': 'list'}
        if prefix is not None:
            d['prefix'] = prefix
        if limit is not None:
            d['limit'] = limit
        if cursor is not None:
            d['cursor'] = cursor
        return self.request(d)

    def list_all(self, prefix=None, limit=None):
        users, cursor = [], None
        for _ in range(10000):
            r = self.list(prefix, limit, cursor)
            if r.get('t') != 'list_result':
                fail('%s: list answered %r' % (self.label, r))
            users += r['users']
            cursor = r.get('next')
            if cursor is None:
                return users
        fail('%s: list paging never ended' % self.label)

    def ping(self):
        self.send({'t': 'ping'})
        f = self.recv_skip_presence()
        if f.get('t') != 'pong':
            fail('%s: ping answered %r' % (self.label, f))


class FakePeer:
    """A user played by the test: registered with the tracker through a raw
    control connection (so it is online), with a real listening socket as
    its one endpoint, speaking the chat-link protocol by hand."""

    def __init__(self, tracker, name, key=None):
        self.name = name
        self.key = key or Key()
        self.lsock = socket.socket()
        self.lsock.bind(('127.0.0.1', 0))
        self.lsock.listen(8)
        on_cleanup(self.lsock.close)
        self.endpoint = '127.0.0.1:%d' % self.lsock.getsockname()[1]
        self.ctl = Raw(tracker.addr, label='fake %s control' % name)
        self.ctl.must_register(name, self.key, endpoints=[self.endpoint])

    def accept(self, timeout=15):
        """Accepts a link from a real peer and does the acceptor's half of the
        handshake; returns (link, their hello)."""
        self.lsock.settimeout(timeout)
        try:
            s, _ = self.lsock.accept()
        except socket.timeout:
            fail('fake %s: nobody dialed within %ss' % (self.name, timeout))
        s.settimeout(None)
        link = Raw.from_socket(s, label='link to fake %s' % self.name)
        return chat_handshake(link, self.key, self.name, dialer=False)

    def dial(self, peer_name, timeout=10):
        """Dials a real peer (its endpoints from the tracker) and does the
        dialer's half of the handshake; returns (link, their hello)."""
        look = self.ctl.lookup(peer_name)
        if look.get('t') != 'lookup_result':
            fail('fake %s: lookup %s gave %r' % (self.name, peer_name, look))
        eps = [e for e in look['endpoints'] if e.startswith('127.0.0.1:')] or look['endpoints']
        host, port = eps[0].rsplit(':', 1)
        s = socket.create_connection((host.strip('[]'), int(port)), timeout=timeout)
        link = Raw.from_socket(s, label='link from fake %s' % self.name)
        return chat_handshake(link, self.key, self.name, dialer=True, to=peer_name,
                              expect_key=look['key'])


ADDR_RE = re.compile(r'^(\d+\.\d+\.\d+\.\d+|\[[0-9a-fA-F:.]+\]):\d+$')


def check_welcome(w):
    if w.get('t') != 'welcome':
        fail('hello answered %r, want welcome' % w)
    if w.get('v') != 1:
        fail('welcome v = %r, want 1' % w.get('v'))
    if not isinstance(w.get('nonce'), bytes) or len(w['nonce']) != 32:
        fail('welcome nonce must be bin(32): %r' % w)
    if not isinstance(w.get('observed'), str) or not ADDR_RE.match(w['observed']):
        fail('welcome observed must be an addr: %r' % w)
    if not isinstance(w.get('ttl'), int) or w['ttl'] <= 0:
        fail('welcome ttl must be a positive uint: %r' % w)


def sqlite(path, sql, sep='|'):
    """Runs sql on the database at path with the sqlite3 shell, as an
    operator would; its output lines (columns joined by sep)."""
    out = subprocess.run(['sqlite3', '-batch', '-noheader', '-separator', sep, path, sql],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    if out.returncode != 0:
        fail('sqlite3 %r: %s' % (sql, out.stderr.decode(errors='replace')))
    return out.stdout.decode('utf-8', errors='replace').splitlines()


def registered_client(tracker, name, key=None):
    r = Raw(tracker.addr, label='raw %s' % name)
    r.must_register(name, key)
    return r


def assert_serving(tracker, client=None):
    """The tracker still answers: a fresh connection gets a welcome, and the
    given registered client still gets lookups and lists answered."""
    fresh = Raw(tracker.addr, label='fresh')
    fresh.hello()
    fresh.close()
    if client is not None:
        r = client.lookup(client.name)
        if r.get('t') != 'lookup_result' or r.get('name') != client.name:
            fail('lookup after the bad client answered %r' % r)
        users = client.list_all()
        if client.name not in users:
            fail('list after the bad client lacks %r: %r' % (client.name, users))
        client.ping()


def have_ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        try:
            s.bind(('::1', 0))
        finally:
            s.close()
        return True
    except OSError:
        return False


# ---------------------------------------------------------------- runner

def run_test(fn):
    """Runs one test function, cleans up everything it made, and returns the
    exit status (0 pass, 1 fail, 77 skip)."""
    status = 0
    try:
        fn()
        # Even processes the test did not stop must not have reported
        # memory errors or undefined behaviour.
        for p in list(_procs):
            p.assert_clean()
    except Skip as e:
        print('SKIP: %s' % e)
        status = SKIP_STATUS
    except BaseException:
        traceback.print_exc(file=sys.stdout)
        status = 1
    finally:
        for fn_ in reversed(list(_cleanups)):
            try:
                fn_()
            except Exception:
                traceback.print_exc(file=sys.stdout)
    if status == 1:
        for p in _procs:
            p.dump()
    sys.stdout.flush()
    return status


def main(namespace):
    names = sys.argv[1:]
    if not names:
        names = sorted(n for n, f in namespace.items() if n.startswith('test_') and callable(f))
        failed = 0
        for n in names:
            # Run them all in this process one after another (for hand use;
            # tests/run.py runs each in its own process, in parallel).
            rc = run_test(namespace[n])
            print('%s %s' % ({0: 'ok  ', SKIP_STATUS: 'skip'}.get(rc, 'FAIL'), n), flush=True)
            failed += rc == 1
            _cleanups.clear()
            _procs.clear()
        sys.exit(1 if failed else 0)
    if len(names) != 1 or names[0] not in namespace:
        print('usage: %s [TEST_NAME]' % sys.argv[0])
        sys.exit(2)
    if not os.access(os.path.join(BUILD, 'tracker'), os.X_OK):
        print('no tracker binary in %s (set PARLEY_BUILD or run make)' % BUILD)
        sys.exit(1)
    sys.exit(run_test(namespace[names[0]]))

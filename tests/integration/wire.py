"""wire: the control protocol's bytes, built and read by hand
(docs/PROTOCOL.md, "Framing"): a msgpack packer that can also write invalid
UTF-8 on purpose (pack_map, RawStr), frames (frame, msg), and Raw, a bare
TCP client of the tracker that can send broken frames and checks every
answer; with it the helpers of the tracker tests (registered_client,
assert_serving, check_welcome, have_ipv6_loopback) and two for plain
sockets (wait_closed, and peer_port: where a real peer's chat listener is).
The chat link on top of it (handshake, sealing, a fake peer) is in
handshake.py.
"""
import re
import select
import socket
import struct
import time

import msgpack

from procs import TestFailure, fail, on_cleanup
from sodium import Key

FRAME_MAX = 64 * 1024


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


def read_until_closed(c, timeout):
    """Reads frames with c.recv until the other side closes; returns the
    frames that came before.  Fails when it is still open after timeout."""
    got = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            got.append(c.recv(max(0.01, deadline - time.monotonic())))
        except Closed:
            return got
        except TestFailure:
            fail('%s: connection still open after %ss (frames: %r)' % (c.label, timeout, got))


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

    def next_frame(self, timeout=10):
        """The next frame that is not a presence push (every other push
        counts, unlike recv_skip_presence)."""
        deadline = time.monotonic() + timeout
        while True:
            f = self.recv(max(0.01, deadline - time.monotonic()))
            if f.get('t') != 'presence':
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
        return read_until_closed(self, timeout)

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


def wait_closed(sock, timeout):
    """Seconds until the other side closed sock (reading and dropping
    whatever comes first), or fail after timeout."""
    start = time.monotonic()
    while True:
        left = timeout - (time.monotonic() - start)
        if left <= 0:
            fail('connection still open after %.1fs' % timeout)
        r, _, _ = select.select([sock], [], [], left)
        if r:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                data = b''
            if not data:
                return time.monotonic() - start


def peer_port(t, name):
    """(host, port) of a real peer's chat listener on loopback, as the
    tracker t gives it (its first endpoint when none is on loopback)."""
    look = registered_client(t, 'looker-%s' % name).lookup(name)
    for e in look.get('endpoints', []):
        host, port = e.rsplit(':', 1)
        if host in ('127.0.0.1', '[::1]'):
            return host.strip('[]'), int(port)
    host, port = look['endpoints'][0].rsplit(':', 1)
    return host.strip('[]'), int(port)

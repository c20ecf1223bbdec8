"""handshake: a chat link played by the test (docs/PROTOCOL.md, "Chat
link"), a second implementation of peer/seal.c's handshake: ChatSession (one
side's ephemeral key, transcript hash, keys, auth, sealing), chat_handshake
(our half of the handshake over a wire.Raw), SealedLink (a link after it,
with Raw's interface) and FakePeer (a user registered with the tracker
whose chat links the test speaks by hand).  Built on wire.py and sodium.py.
"""
import os
import socket
import time

import msgpack

from procs import fail, on_cleanup
from sodium import Key, auth_input, sodium
from wire import Raw, msg, pack_map, read_until_closed

CHAT_VERSION = 2


class ChatSession:
    """One side of a chat link's crypto, played by the test: the ephemeral
    key for hello, the transcript hash, the keys, auth, sealing."""

    def __init__(self, key, name):
        self.key, self.name = key, name
        self.nonce = os.urandom(32)
        self.epk, self.esk = sodium().kx_keypair()
        self.tx = self.rx = None

    def hello(self, to=None, features=None):
        d = {'t': 'hello', 'v': CHAT_VERSION, 'role': 'chat', 'name': self.name,
             'key': self.key.pk, 'nonce': self.nonce, 'ekey': self.epk}
        if to is not None:
            d['to'] = to
        if features is not None:
            d['features'] = features
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


def chat_handshake(raw, key, name, dialer, to=None, expect_key=None, features=None):
    """Runs our half of the chat handshake on raw (a Raw) as the dialer (we
    send hello first, with to) or the acceptor (their hello first); returns
    (SealedLink, their hello).  features: our hello's list (None: no field,
    as an older peer sends)."""
    s = ChatSession(key, name)
    if dialer:
        raw.send(s.hello(to, features))
        hello = raw.recv_type('hello')
    else:
        hello = raw.recv_type('hello')
        raw.send(s.hello(features=features))
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
        return read_until_closed(self, timeout)

    def expect_silence(self, timeout):
        self.raw.expect_silence(timeout)

    def close(self):
        self.raw.close()


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

    def dial(self, peer_name, timeout=10, features=None):
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
                              expect_key=look['key'], features=features)

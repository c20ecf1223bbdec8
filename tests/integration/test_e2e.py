"""test_e2e: end-to-end encryption and key pinning.  A wiretap
(a frame-aware TCP proxy in this process) sits between two real peers on a
direct link, and the test itself plays one side of a relayed link, so the
bytes either path carries can be checked for plaintext, altered, and
replayed.  Then a tracker that serves another key for a name already met
(a fresh tracker database: what a hostile tracker would do) is refused until
/trust, and key files are private."""
import os
import re
import select
import socket
import stat
import struct
import threading
import time

import runner
from procs import Peer, Tracker, connect, fail, on_cleanup, start_peers
from sodium import Key, sodium
from wire import Raw
from handshake import chat_handshake

import test_relay


def fingerprint(pk):
    """peer's ident_fingerprint: BLAKE2b-96 of the key, hex, '-' every 2 bytes."""
    h = sodium().hash(pk, outlen=12).hex()
    return '-'.join(h[i:i + 4] for i in range(0, len(h), 4))


def home_key(home):
    with open(os.path.join(home, 'identity.key'), 'rb') as f:
        return f.read()[32:64]  # Ed25519 sk = seed || pk


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Tap:
    """A TCP proxy on 127.0.0.1 in front of target, forwarding whole frames
    and recording every byte both ways.  tamper(mode) arms it for the next
    sealed frame from the dialing side: 'flip' flips one bit of it,
    'replay' forwards it twice."""

    def __init__(self, target_port):
        self.target = target_port
        self.lsock = socket.socket()
        self.lsock.bind(('127.0.0.1', 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.captured = bytearray()
        self.links = 0
        self.mode = None
        self.tampered = threading.Event()
        self.lock = threading.Lock()
        self.stop = False
        on_cleanup(self.close)
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.stop = True
        try:
            self.lsock.close()
        except OSError:
            pass

    def tamper(self, mode):
        self.tampered.clear()
        self.mode = mode

    def _accept(self):
        while not self.stop:
            try:
                a, _ = self.lsock.accept()
            except OSError:
                return
            b = socket.create_connection(('127.0.0.1', self.target))
            on_cleanup(a.close)
            on_cleanup(b.close)
            self.links += 1
            threading.Thread(target=self._pump, args=(a, b, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(b, a, False), daemon=True).start()

    def _pump(self, src, dst, from_dialer):
        buf = b''
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self.lock:
                    self.captured += data
                buf += data
                while len(buf) >= 4 and len(buf) >= 4 + struct.unpack('>I', buf[:4])[0]:
                    n = 4 + struct.unpack('>I', buf[:4])[0]
                    f, buf = buf[:n], buf[n:]
                    out = [f]
                    if from_dialer and self.mode and b'\xa6sealed' in f:
                        if self.mode == 'flip':
                            f = bytearray(f)
                            f[-5] ^= 0x10  # inside the ciphertext, before the tag ends
                            out = [bytes(f)]
                        else:
                            out = [f, f]
                        self.mode = None
                        self.tampered.set()
                    for x in out:
                        dst.sendall(x)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def tapped_pair(t):
    """alice dials bob through a Tap: bob listens on a known port and
    advertises the tap first, which alice's dial tries first."""
    bob_port = free_port()
    tap = Tap(bob_port)
    bob = Peer('bob', t.addr, extra_args=['--listen', '127.0.0.1:%d' % bob_port,
                                          '--advertise', '127.0.0.1:%d' % tap.port])
    bob.registered()
    alice = Peer('alice', t.addr)
    alice.registered()
    alice.send('/dial bob')
    alice.expect(r'^connected bob direct$', 15)
    bob.expect(r'^connected alice direct$', 15)
    if tap.links < 1:
        fail('the link did not go through the tap')
    return alice, bob, tap


AUTH_ERR = r'^error: the link with %s failed authentication: .*altered, replayed or reordered'


def test_direct_link_carries_no_plaintext():
    t = Tracker()
    alice, bob, tap = tapped_pair(t)
    secrets = ['attack at dawn %d' % i for i in range(5)]
    for s in secrets:
        alice.send(s)
        bob.send('/msg alice reply: %s' % s)
    for i, s in enumerate(secrets):
        bob.expect(r'^msg alice: %s$' % re.escape(s))
        alice.expect(r'^msg bob: reply: %s$' % re.escape(s))
        alice.expect(r'^delivered bob #%d$' % (i + 1))
    time.sleep(0.2)
    cap = bytes(tap.captured)
    if b'sealed' not in cap or b'hello' not in cap:
        fail('the tap saw no handshake or no sealed frames (%d bytes)' % len(cap))
    for s in secrets + ['reply']:
        if s.encode() in cap:
            fail('plaintext %r crossed the wire' % s)
    # Each as msgpack packs it (a fixstr of its length): the hello's
    # features list names "acks" in clear, which is not a message's ack.
    for word in (b'msg', b'ack', b'text'):
        if bytes([0xa0 | len(word)]) + word in cap:
            fail('a msgpack %r key or type crossed the wire in clear' % word)
    alice.quit()
    bob.quit()
    t.stop()


def test_direct_flipped_bit_ends_link_unshown():
    t = Tracker()
    alice, bob, tap = tapped_pair(t)
    alice.send('first, intact')
    bob.expect(r'^msg alice: first, intact$')
    tap.tamper('flip')
    alice.send('second, altered on the way')
    if not tap.tampered.wait(10):
        fail('the tap never saw the sealed frame to alter')
    bob.expect(AUTH_ERR % 'alice', 10)
    bob.expect(r'^closed alice: connection lost$', 10)
    alice.expect(r'^closed bob: connection lost$', 10)
    bob.assert_none(r'altered on the way', 'the altered message shown')
    alice.assert_none(r'^delivered bob #2$', 'the altered message acknowledged')
    alice.quit()
    bob.quit()
    t.stop()


def test_direct_replayed_frame_rejected():
    t = Tracker()
    alice, bob, tap = tapped_pair(t)
    tap.tamper('replay')
    alice.send('said once')
    if not tap.tampered.wait(10):
        fail('the tap never saw the sealed frame to replay')
    bob.expect(r'^msg alice: said once$')
    bob.expect(AUTH_ERR % 'alice', 10)
    bob.expect(r'^closed alice: connection lost$', 10)
    time.sleep(0.3)
    if bob.count(r'^msg alice: said once$') != 1:
        fail('the replayed frame was shown again')
    alice.quit()
    bob.quit()
    t.stop()


def relayed_alice(t, bob_t=None):
    """alice (real) dials bob, a user played by the test whose endpoint is
    dead, so she goes through the relay; the test joins as bob and runs
    bob's handshake.  bob_t: bob's tracker when not alice's (trackers on one
    shared registry: the relay is bob's tracker's, and alice is told to
    join there).  Returns (alice, sealed link, the raw relay conn)."""
    bob_t = bob_t or t
    dead = free_port()
    bob_key = Key()
    cb = Raw(bob_t.addr, label='raw bob')
    cb.must_register('bob', bob_key, endpoints=['127.0.0.1:%d' % dead])
    alice = Peer('alice', t.addr, extra_args=['--relay-after', '200'])
    alice.registered()
    alice.send('/dial bob')
    while True:
        f = cb.recv(15)
        if f.get('t') == 'relay_offer':
            break
    rb = test_relay.relay_conn(bob_t, 'relay bob')
    test_relay.join(rb, f['session'], 'bob', bob_key)
    rb.recv_type('relay_ready', timeout=15)
    link, _ = chat_handshake(rb, bob_key, 'bob', dialer=False)
    alice.expect(r'^connected bob relay$', 10)
    return alice, link, rb


def test_relay_carries_no_plaintext():
    t = Tracker()
    alice, link, rb = relayed_alice(t)
    texts = ['relay secret %d' % i for i in range(5)]
    for s in texts:
        alice.send(s)
    for s in texts:
        m = link.recv_type('msg')
        if m.get('text') != s:
            fail('bob got %r, want %r' % (m, s))
        link.send({'t': 'ack', 'id': m['id']})
    link.send({'t': 'msg', 'id': 77, 'ts': 0, 'text': 'relay answer'})
    alice.expect(r'^msg bob: relay answer$')
    link.recv_type('ack')
    for i in range(len(texts)):
        alice.expect(r'^delivered bob #%d$' % (i + 1))
    cap = bytes(rb.rx_bytes)
    for s in texts:
        if s.encode() in cap:
            fail('plaintext %r came out of the relay' % s)
    after = rb.frames[rb.frames.index(next(f for f in rb.frames if f.get('t') == 'auth')) + 1:]
    if not after or any(f.get('t') != 'sealed' for f in after):
        fail('frames after auth must all be sealed: %r' % after)
    alice.quit()
    t.stop()


def test_relay_flipped_bit_ends_session():
    t = Tracker()
    alice, link, rb = relayed_alice(t)
    link.send({'t': 'msg', 'id': 1, 'ts': 0, 'text': 'genuine'})
    alice.expect(r'^msg bob: genuine$')
    frame = bytearray(link.session.seal({'t': 'msg', 'id': 2, 'ts': 0, 'text': 'forged'}))
    frame[-3] ^= 0x01
    rb.send_bytes(bytes(frame))
    alice.expect(AUTH_ERR % 'bob', 10)
    alice.expect(r'^closed bob: connection lost$', 10)
    got = link.expect_closed(10)
    errs = [f for f in got if f.get('t') == 'error']
    if not errs or errs[0].get('code') != 'bad_seal':
        fail('alice should answer error bad_seal: %r' % got)
    alice.assert_none(r'forged', 'the altered frame shown')
    alice.quit()
    t.stop()


def test_relay_replayed_and_unsealed_frames_rejected():
    t = Tracker()
    alice, link, rb = relayed_alice(t)
    frame = link.session.seal({'t': 'msg', 'id': 5, 'ts': 0, 'text': 'only once'})
    rb.send_bytes(frame)
    alice.expect(r'^msg bob: only once$')
    rb.send_bytes(frame)  # the same bytes again
    alice.expect(AUTH_ERR % 'bob', 10)
    link.expect_closed(10)
    if alice.count(r'^msg bob: only once$') != 1:
        fail('the replayed frame was shown again')
    alice.quit()
    t.stop()
    # A message in clear after the handshake is refused too.
    t = Tracker()
    alice, link, rb = relayed_alice(t)
    rb.send({'t': 'msg', 'id': 9, 'ts': 0, 'text': 'in clear'})
    got = link.expect_closed(10)
    errs = [f for f in got if f.get('t') == 'error']
    if not errs or errs[0].get('code') != 'bad_message':
        fail('an unsealed msg should get error bad_message: %r' % got)
    alice.assert_none(r'in clear')
    alice.quit()
    t.stop()


def test_changed_key_refused_until_trust():
    """alice meets bob (his key is pinned), then a tracker with a fresh
    database serves a new key for bob (a hostile tracker could): alice, as
    a new process on the same home, refuses him both ways, loudly, until
    /trust bob."""
    t1 = Tracker()
    alice = Peer('alice', t1.addr)
    alice.registered()
    bob = Peer('bob', t1.addr)
    bob.registered()
    old = fingerprint(home_key(bob.home))
    alice.send('/msg bob hi')
    bob.expect(r'^msg alice: hi$')
    alice.send('/whois bob')
    alice.expect(r'^whois bob pinned %s tracker %s$' % (old, old))
    alice.quit()
    bob.quit()
    t1.stop()
    kp = os.path.join(alice.home, 'known_peers')
    with open(kp) as f:
        if 'bob ' + home_key(bob.home).hex() not in f.read():
            fail('known_peers does not pin bob\'s key')

    t2 = Tracker()  # a fresh database: bob's name is free again
    bob2 = Peer('bob', t2.addr)
    bob2.registered()
    new = fingerprint(home_key(bob2.home))
    if new == old:
        fail('bob2 should have a new key')
    alice = Peer('alice', t2.addr, home=alice.home)
    alice.registered()
    alice.send('/dial bob')
    changed = (r'the key of bob changed: known_peers pins %s, the link presents %s .*'
               r'/trust bob$' % (old, new))
    alice.expect(r'^error: ' + changed, 15)
    alice.expect(r'^error: cannot reach bob: authentication failed: ' + changed, 20)
    # bob2 cannot get in from his side either.
    bob2.send('/msg alice let me in')
    bob2.expect(r'^error: cannot reach alice: authentication failed: ', 20)
    alice.assert_none(r'^connected bob', 'a link with the changed key')
    alice.assert_none(r'let me in', 'text from the changed key')
    alice.send('/whois bob')
    alice.expect(r'^whois bob pinned %s tracker %s$' % (old, new))
    alice.send('/trust bob')
    alice.expect(r'^trusted bob %s \(was %s\)$' % (new, old))
    alice.send('/dial bob')
    alice.expect(r'^connected bob direct$', 15)
    bob2.send('/msg alice now trusted')
    alice.expect(r'^msg bob: now trusted$', 15)
    with open(kp) as f:
        if 'bob ' + home_key(bob2.home).hex() not in f.read():
            fail('known_peers does not pin bob\'s new key after /trust')
    alice.send('/trust nobody-here')
    alice.expect(r'^error: no user nobody-here$')
    alice.quit()
    bob2.quit()
    t2.stop()


def test_key_files_private():
    t = Tracker()
    alice, bob = start_peers(t.addr, 'alice', 'bob')
    connect(alice, bob)
    alice.quit()
    bob.quit()
    t.stop()
    for name in ('identity.key', 'known_peers'):
        path = os.path.join(alice.home, name)
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode != 0o600:
            fail('%s has mode %o, want 600' % (path, mode))
    t = Tracker()
    for name in ('known_peers', 'identity.key'):
        path = os.path.join(alice.home, name)
        os.chmod(path, 0o644)
        p = Peer('alice', t.addr, home=alice.home, label='alice with %s 644' % name)
        rc = p.proc.wait_exit(10)
        p.proc.wait_output_done()
        if rc == 0:
            fail('a peer with %s mode 644 started' % name)
        want = 'fix it with: chmod 600 %s' % path
        if not any(want in l for l in p.proc.err_lines):
            fail('no "%s" on stderr: %r' % (want, p.proc.err_lines))
        os.chmod(path, 0o600)
    p = Peer('alice', t.addr, home=alice.home)
    p.registered()
    p.quit()
    t.stop()


if __name__ == '__main__':
    runner.main(globals())

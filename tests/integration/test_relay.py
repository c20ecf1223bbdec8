"""test_relay: the tracker's relay sessions over loopback, driven by raw
clients (PROTOCOL.md, "Relay"): who may join, the raw forwarding of bytes
both ways, back-pressure, limits and timeouts; and a real peer whose relay
a third user cannot enter."""
import hashlib
import os
import socket
import threading
import time

import runner
from procs import Peer, Tracker, fail
from sodium import Key, sodium
from wire import Raw, assert_serving, msg, registered_client
from handshake import chat_handshake


def relay_pair(t, a='alice', b='bob'):
    """Two registered raw users; a asks for a relay to b.  Returns
    (ctl_a, ctl_b, token) with the offer checked."""
    ca = registered_client(t, a)
    cb = registered_client(t, b)
    r = ca.request({'t': 'relay_request', 'to': b})
    if r.get('t') != 'relay_result' or not isinstance(r.get('session'), bytes) or \
            len(r['session']) != 16:
        fail('relay_request answered %r' % r)
    offer = cb.recv_type('relay_offer')
    if offer.get('from') != a or offer.get('session') != r['session']:
        fail('relay_offer is %r, want from %s with the session %r' % (offer, a, r['session']))
    return ca, cb, r['session']


def relay_conn(t, label):
    c = Raw(t.addr, label=label)
    c.hello(role='relay')
    return c


def join_frame(c, token, name, key, sig=None):
    """The relay_join frame for relay connection c, signed with key unless
    sig is given."""
    if sig is None:
        sig = sodium().sign(key.sk, b'parley-relay-v1\x00' + c.nonce + token +
                                    name.encode('utf-8'))
    return msg({'t': 'relay_join', 'session': token, 'name': name, 'key': key.pk,
                        'sig': sig})


def join(c, token, name, key, sig=None):
    c.send_bytes(join_frame(c, token, name, key, sig))


def joined_pair(t):
    ca, cb, token = relay_pair(t)
    ra, rb = relay_conn(t, 'relay alice'), relay_conn(t, 'relay bob')
    join(ra, token, 'alice', ca.key)
    join(rb, token, 'bob', cb.key)
    ra.recv_type('relay_ready')
    rb.recv_type('relay_ready')
    return ca, cb, ra, rb


def recv_exactly(sock, n, timeout=10):
    sock.settimeout(timeout)
    got = b''
    while len(got) < n:
        chunk = sock.recv(min(65536, n - len(got)))
        if not chunk:
            fail('relay closed after %d of %d bytes' % (len(got), n))
        got += chunk
    return got


def recv_raw(c, n, timeout=10):
    """The next n bytes of relay connection c, starting with what its frame
    reader already holds past the last frame."""
    got, c.buf = c.buf[:n], c.buf[n:]
    return got + recv_exactly(c.sock, n - len(got), timeout)


def test_relay_forwards_raw_bytes_both_ways():
    t = Tracker()
    ca, cb, token = relay_pair(t)
    ra, rb = relay_conn(t, 'relay alice'), relay_conn(t, 'relay bob')
    join(ra, token, 'alice', ca.key)
    # bob's join and his first relayed bytes in one write: the bytes after
    # relay_join must be forwarded raw, not read as a frame.
    rb.send_bytes(join_frame(rb, token, 'bob', cb.key) + b'\x00\x00\x00\x00not a frame')
    ra.recv_type('relay_ready')
    rb.recv_type('relay_ready')
    got = recv_raw(ra, 15)
    if got != b'\x00\x00\x00\x00not a frame':
        fail('alice got %r' % got)
    blob = os.urandom(300000)
    ra.send_bytes(blob)
    if recv_exactly(rb.sock, len(blob)) != blob:
        fail('bob got other bytes than alice sent')
    rb.send_bytes(b'\xff' * 70000)   # over the frame limit: the relay must not care
    if recv_exactly(ra.sock, 70000) != b'\xff' * 70000:
        fail('alice got other bytes than bob sent')
    # One side leaving closes the other.
    ra.close()
    rb.expect_closed(10)
    assert_serving(t, ca)
    t.stop()


def test_relay_holds_what_the_first_joiner_sends_early():
    """alice joins first and, in the same write, goes on sending: a frame
    and bytes that are no frame at all.  The tracker neither reads them as
    frames nor refuses them: it holds them until bob is in, sends both
    relay_ready, then forwards alice's early bytes to bob raw and in order.
    bob's bytes right after his join reach alice the same way."""
    t = Tracker()
    ca, cb, token = relay_pair(t)
    ra, rb = relay_conn(t, 'relay alice'), relay_conn(t, 'relay bob')
    early = msg({'t': 'hello', 'v': 1, 'role': 'peer'}) + b'\xff\xff\xff\xffraw bytes'
    ra.send_bytes(join_frame(ra, token, 'alice', ca.key) + early)
    t.proc.wait_stderr(r'alice joined the relay session with bob')
    rb.send_bytes(join_frame(rb, token, 'bob', cb.key))
    rb.send_bytes(b'from bob, unframed')
    ra.recv_type('relay_ready')
    rb.recv_type('relay_ready')
    # Both directions end with a marker sent after relay_ready: nothing may
    # come between the early bytes and it, nor be lost before.
    ra.send_bytes(b'<end a>')
    rb.send_bytes(b'<end b>')
    got = recv_raw(rb, len(early) + 7)
    if got != early + b'<end a>':
        fail('bob got %r, want alice\'s early bytes %r then her marker' % (got, early))
    got = recv_raw(ra, 18 + 7)
    if got != b'from bob, unframed<end b>':
        fail('alice got %r, want bob\'s bytes then his marker' % got)
    assert_serving(t, ca)
    t.stop()


def test_relay_first_joiner_leaving_ends_the_session():
    """alice joins, sends a few bytes and leaves before bob joins: the
    tracker is still reading her (what she sent is held, not left unread
    in the socket), so it sees her go and ends the session at once; bob's
    join then finds no session, instead of a relay_ready for a partner who
    is gone."""
    t = Tracker()
    ca, cb, token = relay_pair(t)
    ra = relay_conn(t, 'relay alice')
    ra.send_bytes(join_frame(ra, token, 'alice', ca.key) + b'early bytes')
    t.proc.wait_stderr(r'alice joined the relay session with bob')
    ra.close()
    t.proc.wait_stderr(r'relay session for alice and bob closed')
    rb = relay_conn(t, 'relay bob')
    join(rb, token, 'bob', cb.key)
    rb.expect_error('not_found')
    assert_serving(t, cb)
    t.stop()


def test_relay_join_bad_signature():
    t = Tracker()
    ca, cb, token = relay_pair(t)
    rb = relay_conn(t, 'relay bob')
    join(rb, token, 'bob', cb.key, sig=b'\x01' * 64)
    rb.expect_error('bad_signature')
    # Signed over another nonce (a replayed join) fails the same way.
    r2 = relay_conn(t, 'relay bob 2')
    sig = sodium().sign(cb.key.sk, b'parley-relay-v1\x00' + rb.nonce + token + b'bob')
    join(r2, token, 'bob', cb.key, sig=sig)
    r2.expect_error('bad_signature')
    t.stop()


def test_relay_unknown_session():
    t = Tracker()
    ca = registered_client(t, 'alice')
    r = relay_conn(t, 'relay alice')
    join(r, os.urandom(16), 'alice', ca.key)
    r.expect_error('not_found')
    t.stop()


def test_relay_third_party_cannot_join():
    """mallory (registered, own key) holds alice and bob's token: joining as
    herself is forbidden, joining as bob she cannot sign; alice and bob's
    session is unaffected."""
    t = Tracker()
    ca, cb, token = relay_pair(t)
    cm = registered_client(t, 'mallory')
    rm = relay_conn(t, 'relay mallory')
    join(rm, token, 'mallory', cm.key)
    rm.expect_error('forbidden')
    rm2 = relay_conn(t, 'relay mallory as bob')
    join(rm2, token, 'bob', cm.key)
    rm2.expect_error('bad_signature')
    ra, rb = relay_conn(t, 'relay alice'), relay_conn(t, 'relay bob')
    join(ra, token, 'alice', ca.key)
    join(rb, token, 'bob', cb.key)
    ra.recv_type('relay_ready')
    rb.recv_type('relay_ready')
    # A second join by a party that is in already is refused too.
    ra2 = relay_conn(t, 'relay alice again')
    join(ra2, token, 'alice', ca.key)
    ra2.expect_error('not_found')
    ra.send_bytes(b'ping?')
    if recv_exactly(rb.sock, 5) != b'ping?':
        fail('relay did not forward after the intruders')
    t.stop()


def test_relay_request_errors():
    t = Tracker(extra_args=['--relay-per-user', '1'])
    ca = registered_client(t, 'alice')
    r = ca.request({'t': 'relay_request', 'to': 'nobody'})
    if r.get('t') != 'error' or r.get('code') != 'not_found':
        fail('relay to an unknown user answered %r' % r)
    gone = registered_client(t, 'gone')
    gone.close()
    time.sleep(0.2)
    r = ca.request({'t': 'relay_request', 'to': 'gone'})
    if r.get('t') != 'error' or r.get('code') != 'offline':
        fail('relay to an offline user answered %r' % r)
    cb = registered_client(t, 'bob')
    r = ca.request({'t': 'relay_request', 'to': 'bob'})
    if r.get('t') != 'relay_result':
        fail('first relay answered %r' % r)
    r = ca.request({'t': 'relay_request', 'to': 'bob'})
    if r.get('t') != 'error' or r.get('code') != 'limit' or 'limit' not in r.get('msg', ''):
        fail('a relay over --relay-per-user 1 answered %r' % r)
    r = ca.request({'t': 'connect_request', 'to': 'bob'})
    if r.get('t') != 'connect_result':
        fail('connect_request answered %r' % r)
    push = cb.recv_type('relay_offer')
    push = cb.recv_type('connect_request')
    if push.get('from') != 'alice' or push.get('key') != ca.key.pk or \
            push.get('endpoints') != ['127.0.0.1:9'] or not push.get('observed'):
        fail('connect_request push is %r' % push)
    t.stop()


def test_relay_join_timeout():
    t = Tracker(extra_args=['--relay-join-timeout', '500'])
    ca, cb, token = relay_pair(t)
    ra = relay_conn(t, 'relay alice')
    start = time.monotonic()
    join(ra, token, 'alice', ca.key)
    ra.expect_error('timeout', timeout=5)
    if time.monotonic() - start > 3:
        fail('join timeout of 500 ms took %.1fs' % (time.monotonic() - start))
    # The session is gone: bob is too late.
    rb = relay_conn(t, 'relay bob')
    join(rb, token, 'bob', cb.key)
    rb.expect_error('not_found')
    t.stop()


def test_relay_idle_timeout():
    t = Tracker(extra_args=['--relay-idle', '1'])
    ca, cb, ra, rb = joined_pair(t)
    ra.send_bytes(b'x')
    recv_exactly(rb.sock, 1)
    ra.expect_closed(5)
    rb.expect_closed(5)
    t.stop()


def rss_kb(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return 0


def test_relay_backpressure_bounds_tracker_memory():
    """bob stops reading while alice sends as fast as she can: the tracker
    stops reading alice (her sends block) instead of buffering; once bob
    reads again every byte arrives, in order."""
    t = Tracker(extra_args=['--relay-rate', str(1 << 40)])
    ca, cb, ra, rb = joined_pair(t)
    rb.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    base = rss_kb(t.proc.p.pid)
    total = 64 << 20
    sent = [0]
    h = hashlib.sha256()
    done = threading.Event()

    def sender():
        chunk = os.urandom(1 << 16)
        ra.sock.settimeout(None)
        try:
            while sent[0] < total:
                ra.sock.sendall(chunk)
                h.update(chunk)
                sent[0] += len(chunk)
        except OSError:
            pass
        done.set()

    th = threading.Thread(target=sender, daemon=True)
    th.start()
    time.sleep(2.0)
    stalled = sent[0]
    grown = rss_kb(t.proc.p.pid) - base
    if done.is_set() or stalled >= total:
        fail('alice sent all %d bytes to a reader that does not read' % total)
    if grown > 24 * 1024:
        fail('tracker memory grew by %d KiB while bob was not reading' % grown)
    # Now bob reads: everything arrives, in order.
    got = hashlib.sha256()
    n = 0
    rb.sock.settimeout(20)
    while n < total:
        chunk = rb.sock.recv(1 << 20)
        if not chunk:
            fail('relay closed after %d bytes' % n)
        got.update(chunk)
        n += len(chunk)
    done.wait(10)
    if got.digest() != h.digest():
        fail('bytes changed on the way through the relay')
    print('alice got %d bytes out while bob did not read; tracker grew %d KiB' % (stalled, grown))
    t.stop()


def test_relay_rate_limit_slows_not_drops():
    t = Tracker(extra_args=['--relay-rate', '200000'])
    ca, cb, ra, rb = joined_pair(t)
    blob = os.urandom(600000)
    start = time.monotonic()
    threading.Thread(target=ra.send_bytes, args=(blob,), daemon=True).start()
    if recv_exactly(rb.sock, len(blob), timeout=20) != blob:
        fail('rate-limited relay changed the bytes')
    took = time.monotonic() - start
    # 200 kB of burst, then 200 kB/s: at least about 2 s for 600 kB.
    if took < 1.5:
        fail('600 kB went through a 200 kB/s relay in %.2fs' % took)
    t.stop()


def test_relay_rate_limit_counts_held_bytes():
    """What the first joiner sent while it waited (held, then forwarded at
    relay_ready) is charged to the session's rate like any later byte: at
    20 kB/s, 60 kB held and then 40 kB more need about 4 s past the one
    second of burst, not a free pass for the held part."""
    t = Tracker(extra_args=['--relay-rate', '20000'])
    ca, cb, token = relay_pair(t)
    ra, rb = relay_conn(t, 'relay alice'), relay_conn(t, 'relay bob')
    held = os.urandom(60000)
    ra.send_bytes(join_frame(ra, token, 'alice', ca.key) + held)
    t.proc.wait_stderr(r'alice joined the relay session with bob')
    join(rb, token, 'bob', cb.key)
    ra.recv_type('relay_ready')
    rb.recv_type('relay_ready')
    start = time.monotonic()
    more = os.urandom(40000)
    threading.Thread(target=ra.send_bytes, args=(more,), daemon=True).start()
    if recv_raw(rb, len(held) + len(more), timeout=30) != held + more:
        fail('the relay changed the bytes')
    took = time.monotonic() - start
    if took < 3:
        fail('100 kB (60 kB of them held) went through a 20 kB/s relay in %.2fs' % took)
    t.stop()


def test_peer_relay_third_party_cannot_join():
    """A real peer (alice) dials bob, a raw user whose endpoint is dead: she
    goes to the relay.  mallory, holding the token, cannot get in; bob joins
    and runs the chat handshake over the relay; the chat works."""
    t = Tracker()
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    dead = s.getsockname()[1]
    s.close()
    bob_key = Key()
    cb = Raw(t.addr, label='raw bob')
    cb.must_register('bob', bob_key, endpoints=['127.0.0.1:%d' % dead])
    alice = Peer('alice', t.addr, extra_args=['--relay-after', '200'])
    alice.registered()
    cm = registered_client(t, 'mallory')
    alice.send('/dial bob')
    while True:
        f = cb.recv(15)
        if f.get('t') == 'relay_offer':
            break
    token = f['session']
    rm = relay_conn(t, 'relay mallory')
    join(rm, token, 'mallory', cm.key)
    rm.expect_error('forbidden')
    rb = relay_conn(t, 'relay bob')
    join(rb, token, 'bob', bob_key)
    rb.recv_type('relay_ready', timeout=15)
    # The chat handshake, end to end through the relay; bob accepts.
    rb, hello = chat_handshake(rb, bob_key, 'bob', dialer=False)
    if hello.get('name') != 'alice' or hello.get('to') != 'bob':
        fail('alice\'s hello over the relay is %r' % hello)
    alice.expect(r'^connected bob relay$', 10)
    alice.send('hello through the relay')
    m = rb.recv_type('msg')
    if m.get('text') != 'hello through the relay':
        fail('bob got %r' % m)
    rb.send({'t': 'ack', 'id': m['id']})
    alice.expect(r'^delivered bob #1$')
    rb.send({'t': 'msg', 'id': 7, 'ts': 0, 'text': 'and back'})
    alice.expect(r'^msg bob: and back$')
    alice.quit()
    t.stop()


if __name__ == '__main__':
    runner.main(globals())

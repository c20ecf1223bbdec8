"""test_link: the chat-link protocol of a real peer, checked frame by frame
against a peer played by the test (handshake.FakePeer): the handshake both
ways, acks, duplicate ids shown once, resending unacknowledged messages on
the next link, bye, and impostors refused; and strangers on a peer's chat
port (garbage, broken handshakes, silence) cost it nothing lasting."""
import os
import socket
import time

import runner
from procs import Peer, Tracker, connect, fail, on_cleanup, start_peers
from sodium import Key
from wire import Closed, Raw, frame, msg, peer_port, wait_closed
from handshake import ChatSession, FakePeer


def now_ms():
    return int(time.time() * 1000)


def test_fake_dials_real_peer_acks_and_dedups():
    t = Tracker()
    alice = Peer('alice', t.addr)
    alice.registered()
    mallory = FakePeer(t, 'mallory')
    link, hello = mallory.dial('alice')
    if hello.get('name') != 'alice' or 'to' in hello and hello['to'] is not None:
        fail('acceptor hello should name alice and carry no "to": %r' % hello)
    alice.expect(r'^connected mallory direct$')
    link.send({'t': 'msg', 'id': 1000, 'ts': now_ms(), 'text': 'hello alice'})
    a = link.recv_type('ack')
    if a.get('id') != 1000:
        fail('ack for id 1000 carries %r' % a)
    alice.expect(r'^msg mallory: hello alice$')
    # The same id again: acknowledged again, not shown again.
    link.send({'t': 'msg', 'id': 1000, 'ts': now_ms(), 'text': 'hello alice'})
    if link.recv_type('ack').get('id') != 1000:
        fail('a duplicate must be acknowledged too')
    link.send({'t': 'msg', 'id': 1001, 'ts': now_ms(), 'text': 'second'})
    if link.recv_type('ack').get('id') != 1001:
        fail('ack for 1001 missing')
    alice.expect(r'^msg mallory: second$')
    if alice.count(r'^msg mallory: hello alice$') != 1:
        fail('duplicate id shown %d times' % alice.count(r'^msg mallory: hello alice$'))
    # alice answers; we ack; she sees it delivered.
    alice.send('/msg mallory back at you')
    m = link.recv_type('msg')
    if m.get('text') != 'back at you' or not isinstance(m.get('id'), int) or \
            not isinstance(m.get('ts'), int):
        fail('msg from alice: %r' % m)
    if abs(m['ts'] - now_ms()) > 60000:
        fail('msg ts %r is not unix milliseconds' % m['ts'])
    link.send({'t': 'ack', 'id': m['id']})
    alice.expect(r'^delivered mallory #1$')
    # ping on the link.
    link.send({'t': 'ping'})
    link.recv_type('pong')
    link.send({'t': 'bye'})
    alice.expect(r'^closed mallory: bye$')
    link.expect_closed()
    alice.quit()
    t.stop()


def test_acks_ride_in_msg():
    """Our hello lists "acks": the echo's answer carries the ack of what it
    answers (no ack frame of its own), and acks inside our msg count as
    ack frames would; without the feature acks come as frames (the test
    above); a bad acks field is bad_message and the close."""
    t = Tracker()
    echo = Peer('echo', t.addr, echo=True)
    echo.registered()
    mallory = FakePeer(t, 'mallory')
    link, hello = mallory.dial('echo', features=['acks'])
    if 'acks' not in (hello.get('features') or []):
        fail('the real peer\'s hello should list the acks feature: %r' % hello)
    echo.expect(r'^connected mallory direct$')
    link.send({'t': 'msg', 'id': 10, 'ts': now_ms(), 'text': 'ping one'})
    m = link.recv()
    if m.get('t') != 'msg' or m.get('text') != 'ping one' or m.get('acks') != [10]:
        fail('the echo should answer with one msg carrying acks [10], got %r' % m)
    # Our ack of the echo rides in our next msg; the answer to that carries
    # the ack of ours, and the echo's earlier message counts as delivered.
    link.send({'t': 'msg', 'id': 11, 'ts': now_ms(), 'text': 'ping two', 'acks': [m['id']]})
    m2 = link.recv()
    if m2.get('t') != 'msg' or m2.get('text') != 'ping two' or m2.get('acks') != [11]:
        fail('second answer: %r' % m2)
    echo.expect(r'^delivered mallory #1$')
    if echo.count(r'^delivered mallory #2$'):
        fail('the second echo was reported delivered before we acked it')
    # An ack frame still counts, with the feature too.
    link.send({'t': 'ack', 'id': m2['id']})
    echo.expect(r'^delivered mallory #2$')
    link.send({'t': 'msg', 'id': 12, 'ts': now_ms(), 'text': 'bad', 'acks': [1, 'two']})
    e = link.recv_type('error')
    if e.get('code') != 'bad_message':
        fail('acks with a str element: %r' % e)
    link.expect_closed()
    if echo.count(r'^msg mallory: bad$'):
        fail('a msg with bad acks must not be shown')
    echo.quit()
    t.stop()


def test_real_peer_dials_fake():
    t = Tracker()
    mallory = FakePeer(t, 'mallory')
    alice = Peer('alice', t.addr)
    alice.registered()
    alice.send('/dial mallory')
    link, hello = mallory.accept()
    if hello.get('name') != 'alice' or hello.get('to') != 'mallory':
        fail('dialer hello: %r' % hello)
    alice.expect(r'^connected mallory direct$')
    alice.expect(r'^current mallory$')
    alice.send('one')
    alice.send('two')
    m1 = link.recv_type('msg')
    m2 = link.recv_type('msg')
    if (m1.get('text'), m2.get('text')) != ('one', 'two') or not m1['id'] < m2['id']:
        fail('messages out of order or ids not increasing: %r %r' % (m1, m2))
    link.send({'t': 'ack', 'id': m2['id']})
    link.send({'t': 'ack', 'id': m1['id']})
    alice.expect(r'^delivered mallory #2$')
    alice.expect(r'^delivered mallory #1$')
    alice.quit()
    t.stop()


def test_unacked_messages_resent_on_next_link():
    t = Tracker()
    mallory = FakePeer(t, 'mallory')
    alice = Peer('alice', t.addr)
    alice.registered()
    alice.send('/msg mallory first')
    link, _ = mallory.accept()
    m1 = link.recv_type('msg')
    if m1.get('text') != 'first':
        fail('got %r' % m1)
    # Never acknowledged: the link dies.
    link.close()
    alice.expect(r'^closed mallory: connection lost$', 15)
    alice.assert_none(r'^delivered mallory')
    alice.send('/msg mallory second')
    link2, _ = mallory.accept()
    again = link2.recv_type('msg')
    nxt = link2.recv_type('msg')
    if again.get('id') != m1['id'] or again.get('text') != 'first':
        fail('the unacknowledged message must come again first, same id: %r (was %r)'
             % (again, m1))
    if nxt.get('text') != 'second' or nxt['id'] <= m1['id']:
        fail('then the new one: %r' % nxt)
    link2.send({'t': 'ack', 'id': again['id']})
    link2.send({'t': 'ack', 'id': nxt['id']})
    alice.expect(r'^delivered mallory #1$')
    alice.expect(r'^delivered mallory #2$')
    alice.quit()
    t.stop()


def test_impostor_dialer_refused():
    """mallory's tracker key is K1; a dialer claiming to be mallory with K2
    is refused and never shown as connected."""
    t = Tracker()
    alice = Peer('alice', t.addr)
    alice.registered()
    mallory = FakePeer(t, 'mallory')
    forged = Key()
    look = mallory.ctl.lookup('alice')
    ep = [e for e in look['endpoints'] if e.startswith('127.0.0.1:')] or look['endpoints']
    host, port = ep[0].rsplit(':', 1)
    s = socket.create_connection((host.strip('[]'), int(port)), timeout=10)
    link = Raw.from_socket(s, label='forged link')
    sess = ChatSession(forged, 'mallory')
    link.send(sess.hello(to='alice'))
    got = []
    try:
        while True:
            f = link.recv(10)
            got.append(f)
            if f.get('t') == 'hello':
                sess.derive(True, f)
                link.send(sess.auth())
            if f.get('t') in ('auth', 'error'):
                break
    except Closed:
        pass
    if any(f.get('t') == 'auth' for f in got):
        fail('alice authenticated herself to an impostor (she must check the key first): %r'
             % got)
    errs = [f for f in got if f.get('t') == 'error']
    if errs and errs[0].get('code') not in ('bad_signature', 'not_found'):
        fail('impostor got error %r, want bad_signature' % errs[0])
    link.expect_closed()
    alice.assert_none(r'^connected mallory')
    alice.assert_none(r'^msg mallory')
    # alice is fine and still takes the real mallory.
    link2, _ = mallory.dial('alice')
    alice.expect(r'^connected mallory direct$')
    alice.quit()
    t.stop()


def test_wrong_to_refused():
    t = Tracker()
    alice = Peer('alice', t.addr)
    alice.registered()
    mallory = FakePeer(t, 'mallory')
    look = mallory.ctl.lookup('alice')
    ep = [e for e in look['endpoints'] if e.startswith('127.0.0.1:')] or look['endpoints']
    host, port = ep[0].rsplit(':', 1)
    s = socket.create_connection((host.strip('[]'), int(port)), timeout=10)
    link = Raw.from_socket(s, label='misdirected link')
    link.send(ChatSession(mallory.key, 'mallory').hello(to='somebody-else'))
    frames = link.expect_closed(15)
    if any(f.get('t') == 'auth' for f in frames):
        fail('alice authenticated on a link meant for someone else: %r' % frames)
    alice.assert_none(r'^connected mallory')
    alice.quit()
    t.stop()


def test_bad_signature_on_link():
    t = Tracker()
    alice = Peer('alice', t.addr)
    alice.registered()
    mallory = FakePeer(t, 'mallory')
    look = mallory.ctl.lookup('alice')
    ep = [e for e in look['endpoints'] if e.startswith('127.0.0.1:')] or look['endpoints']
    host, port = ep[0].rsplit(':', 1)
    s = socket.create_connection((host.strip('[]'), int(port)), timeout=10)
    link = Raw.from_socket(s, label='bad-sig link')
    sess = ChatSession(mallory.key, 'mallory')
    link.send(sess.hello(to='alice'))
    h = link.recv_type('hello')
    sess.derive(True, h)
    # Signed over the wrong transcript.
    link.send({'t': 'auth', 'sig': mallory.key.sign_auth(os.urandom(32), 'D', sess.header),
               'header': sess.header})
    frames = link.expect_closed(15)
    errs = [f for f in frames if f.get('t') == 'error']
    if errs and errs[0].get('code') != 'bad_signature':
        fail('bad auth got %r, want error bad_signature' % errs)
    del h
    alice.assert_none(r'^connected mallory')
    alice.quit()
    t.stop()


def test_garbage_on_chat_link():
    t = Tracker()
    alice = Peer('alice', t.addr)
    alice.registered()
    mallory = FakePeer(t, 'mallory')
    link, _ = mallory.dial('alice')
    alice.expect(r'^connected mallory direct$')
    link.send_bytes(b'\x00\x00\x00\x03\xc1\xc1\xc1')
    f = link.recv_skip_presence()
    if f.get('t') != 'error' or f.get('code') != 'bad_frame':
        fail('garbage on a chat link answered %r, want error bad_frame' % f)
    link.expect_closed()
    alice.expect(r'^closed mallory: connection lost$')
    # alice keeps working.
    alice.send('/list')
    alice.expect(r'^users 2: alice mallory$')
    alice.quit()
    t.stop()


def test_stranger_on_peer_port():
    t = Tracker()
    alice, bob = start_peers(t.addr, 'alice', 'bob')
    host, port = peer_port(t, 'alice')
    connect(alice, bob)
    garbage = [
        b'GET / HTTP/1.1\r\nHost: x\r\n\r\n',
        b'\xff\xff\xff\xff',
        b'\x00\x00\x00\x00',
        frame(b'\xc1'),
        msg({'t': 'msg', 'id': 1, 'ts': 0, 'text': 'not authenticated'}),
        msg({'t': 'hello', 'v': 1, 'role': 'chat', 'name': 'bob', 'key': b'\x00' * 32,
             'nonce': b'\x00' * 32}),    # bob's name, a key the tracker does not have
        msg({'t': 'hello', 'v': 1, 'role': 'chat', 'name': 'x' * 10240, 'key': b'\x00' * 32,
             'nonce': b'\x00' * 32}),
        msg({'t': 'hello', 'v': 1, 'role': 'chat', 'name': "o'; DROP--", 'key': b'\x00' * 32,
             'nonce': b'\x00' * 32, 'to': 'alice'}),
        msg({'t': 'auth', 'sig': b'\x00' * 64}),
        os.urandom(3000),
    ]
    for i, g in enumerate(garbage):
        s = socket.create_connection((host, port), timeout=10)
        on_cleanup(s.close)
        s.sendall(g)
        wait_closed(s, 10)
        alice.send('/msg bob still here %d' % i)
        bob.expect(r'^msg alice: still here %d$' % i)
    # A stranger that never speaks, and one that stops mid-frame: closed by
    # the 10 s handshake timeout while alice keeps chatting.
    mute = socket.create_connection((host, port), timeout=10)
    half = socket.create_connection((host, port), timeout=10)
    on_cleanup(mute.close)
    on_cleanup(half.close)
    half.sendall(msg({'t': 'hello', 'v': 1, 'role': 'chat'})[:7])
    start = time.monotonic()
    alice.send('/msg bob during the silence')
    bob.expect(r'^msg alice: during the silence$')
    bob.send('/msg alice answer')
    alice.expect(r'^msg bob: answer$')
    wait_closed(mute, 16)
    wait_closed(half, 16)
    took = time.monotonic() - start
    if took < 8:
        fail('silent strangers closed after only %.1fs (handshake timeout is 10 s)' % took)
    alice.send('/msg bob after the strangers')
    bob.expect(r'^msg alice: after the strangers$')
    alice.quit()
    bob.quit()
    t.stop()


def test_text_over_4000_bytes_refused():
    t = Tracker()
    alice = Peer('alice', t.addr)
    alice.registered()
    mallory = FakePeer(t, 'mallory')
    link, _ = mallory.dial('alice')
    alice.expect(r'^connected mallory direct$')
    link.send({'t': 'msg', 'id': 1, 'ts': now_ms(), 'text': 'x' * 4000})
    if link.recv_type('ack').get('id') != 1:
        fail('4000 bytes must be accepted')
    alice.expect(r'^msg mallory: x{4000}$')
    # alice cannot send more than 4000 bytes: an error, nothing on the wire.
    alice.send('/msg mallory ' + 'y' * 4001)
    alice.expect(r'^error: ')
    alice.send('/msg mallory small')
    m = link.recv_type('msg')
    if m.get('text') != 'small':
        fail('after the refused long text, the next msg is %r' % m)
    alice.quit()
    t.stop()


if __name__ == '__main__':
    runner.main(globals())

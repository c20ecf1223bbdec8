"""test_malformed: what the tracker does with broken or hostile input.  Each
bad frame must get the right error code, close that one connection, and
leave everyone else served.  Also: the framing edge cases (a frame a byte at a
time, many frames in one send, the exact size limit)."""
import select
import struct

import harness
from harness import (Key, Peer, Raw, RawStr, Tracker, assert_serving, fail, frame, msg,
                     pack_map, registered_client)


def bad_frame_case(data, code, hello_first=False):
    """One tracker, a registered client, then data on a new connection:
    error `code`, close, and the registered client is still served."""
    t = Tracker()
    good = registered_client(t, 'good')
    bad = Raw(t.addr, label='bad')
    if hello_first:
        bad.hello()
    bad.send_bytes(data)
    bad.expect_error(code)
    assert_serving(t, good)
    t.stop()


def test_oversize_frame_peer_keeps_working():
    t = Tracker()
    alice = Peer('alice', t.addr)
    alice.registered()
    bob = Peer('bob', t.addr)
    bob.registered()
    bad = Raw(t.addr, label='oversize')
    # Only the header: the tracker must refuse it before reading 64 KiB more.
    bad.send_bytes(struct.pack('>I', 64 * 1024 + 1))
    bad.expect_error('too_big')
    # The real peers' connections were untouched.
    alice.send('/list')
    alice.expect(r'^users 2: alice bob$')
    alice.send('/dial bob')
    alice.expect(r'^connected bob direct$', 15)
    alice.assert_none(r'^tracker lost')
    bob.assert_none(r'^tracker lost')
    alice.quit()
    bob.quit()
    t.stop()


def test_oversize_frame_after_hello():
    big = b'\x00' * (64 * 1024 + 1)
    bad_frame_case(frame(big), 'too_big', hello_first=True)


def test_huge_length_header():
    bad_frame_case(b'\xff\xff\xff\xff', 'too_big')


def test_garbage_frame():
    bad_frame_case(frame(b'\xc1\xc1\xc1\xc1\xc1\xc1'), 'bad_frame')


def test_garbage_after_hello():
    bad_frame_case(frame(b'\xc1\xc1\xc1\xc1\xc1\xc1'), 'bad_frame', hello_first=True)


def test_http_request():
    # ASCII text: the first 4 bytes read as a length far over the limit.
    bad_frame_case(b'GET / HTTP/1.1\r\nHost: x\r\n\r\n', 'too_big')


def test_zero_length_frame():
    bad_frame_case(b'\x00\x00\x00\x00', 'bad_frame')


def test_not_a_map():
    import msgpack
    bad_frame_case(frame(msgpack.packb(['hello', 1])), 'bad_frame')


def test_missing_type():
    bad_frame_case(frame(pack_map({'v': 1, 'role': 'peer'})), 'bad_frame')


def test_type_not_a_string():
    bad_frame_case(frame(pack_map({'t': 7, 'v': 1, 'role': 'peer'})), 'bad_frame')


def test_trailing_bytes():
    bad_frame_case(frame(pack_map({'t': 'hello', 'v': 1, 'role': 'peer'}) + b'\xc0'), 'bad_frame')


def test_truncated_msgpack():
    full = pack_map({'t': 'hello', 'v': 1, 'role': 'peer'})
    bad_frame_case(frame(full[:-3]), 'bad_frame')


def test_huge_container_header():
    """A 6-byte payload announcing a map of 4 billion entries must be refused
    as bad_frame, not turned into a giant allocation."""
    bad_frame_case(frame(b'\xdf\xff\xff\xff\xff\x00'), 'bad_frame')


def test_unknown_type():
    bad_frame_case(msg({'t': 'frobnicate', 'id': 1}), 'unknown_type', hello_first=True)


def test_unknown_type_first():
    bad_frame_case(msg({'t': 'frobnicate'}), 'unknown_type')


def test_hello_missing_version():
    bad_frame_case(msg({'t': 'hello', 'role': 'peer'}), 'bad_message')


def test_hello_version_wrong_type():
    bad_frame_case(msg({'t': 'hello', 'v': '1', 'role': 'peer'}), 'bad_message')


def test_hello_wrong_version():
    bad_frame_case(msg({'t': 'hello', 'v': 2, 'role': 'peer'}), 'version')


def test_hello_version_zero():
    bad_frame_case(msg({'t': 'hello', 'v': 0, 'role': 'peer'}), 'version')


def test_register_missing_key():
    t = Tracker()
    good = registered_client(t, 'good')
    c = Raw(t.addr)
    c.hello()
    c.send({'t': 'register', 'name': 'alice', 'sig': b'\x00' * 64, 'endpoints': []})
    c.expect_error('bad_message')
    assert_serving(t, good)
    t.stop()


def test_register_wrong_field_types():
    t = Tracker()
    good = registered_client(t, 'good')
    key = Key()
    cases = [
        ('key as str', lambda n: {'key': 'x' * 32}),
        ('key of 31 bytes', lambda n: {'key': key.pk[:31]}),
        ('sig of 63 bytes', lambda n: {'sig': key.sign_register(n, b'alice')[:63]}),
        ('name as bin', lambda n: {'name': b'alice'}),
        ('endpoints not an array', lambda n: {'endpoints': '127.0.0.1:1'}),
        ('endpoint not a str', lambda n: {'endpoints': [5]}),
    ]
    for what, change in cases:
        c = Raw(t.addr, label='register %s' % what)
        c.hello()
        d = {'t': 'register', 'name': 'alice', 'key': key.pk,
             'sig': key.sign_register(c.nonce, b'alice'), 'endpoints': ['127.0.0.1:1']}
        d.update(change(c.nonce))
        c.send(d)
        f = c.recv_skip_presence()
        if f.get('t') != 'error' or f.get('code') != 'bad_message':
            fail('register with %s answered %r, want error bad_message' % (what, f))
        c.expect_closed()
    assert_serving(t, good)
    # None of this bound the name.
    registered_client(t, 'alice')
    t.stop()


def test_lookup_missing_name():
    t = Tracker()
    good = registered_client(t, 'good')
    bad = registered_client(t, 'bad')
    bad.send({'t': 'lookup', 'id': 5})
    f = bad.recv_skip_presence()
    if f.get('t') != 'error' or f.get('code') != 'bad_message':
        fail('lookup without a name answered %r' % f)
    assert_serving(t, good)
    t.stop()


def test_list_wrong_field_type():
    t = Tracker()
    good = registered_client(t, 'good')
    bad = registered_client(t, 'bad')
    bad.send({'t': 'list', 'id': 1, 'limit': 'ten'})
    f = bad.recv_skip_presence()
    if f.get('t') != 'error' or f.get('code') != 'bad_message':
        fail('list with limit "ten" answered %r' % f)
    assert_serving(t, good)
    t.stop()


def test_nil_counts_as_absent():
    t = Tracker()
    c = registered_client(t, 'alice')
    # An optional field set to nil is just absent.
    r = c.request({'t': 'list', 'prefix': None, 'cursor': None, 'limit': None})
    if r.get('t') != 'list_result' or r.get('users') != ['alice']:
        fail('list with nil optional fields answered %r' % r)
    # A required one set to nil is missing.
    c.send({'t': 'lookup', 'id': 9, 'name': None})
    f = c.recv_skip_presence()
    if f.get('t') != 'error' or f.get('code') != 'bad_message':
        fail('lookup with name nil answered %r' % f)
    t.stop()


def test_unknown_fields_ignored():
    t = Tracker()
    c = Raw(t.addr)
    c.send({'t': 'hello', 'v': 1, 'role': 'peer', 'future': {'x': [1, 2]}, 'z': b'\x00'})
    w = c.recv()
    harness.check_welcome(w)
    c.nonce = w['nonce']
    c.must_register('alice')
    r = c.request({'t': 'lookup', 'name': 'alice', 'extra': 'ignored'})
    if r.get('t') != 'lookup_result':
        fail('lookup with an unknown field answered %r' % r)
    t.stop()


def test_request_before_register():
    t = Tracker()
    good = registered_client(t, 'good')
    for req in ({'t': 'list', 'id': 1}, {'t': 'lookup', 'id': 1, 'name': 'good'}):
        c = Raw(t.addr, label='unregistered %s' % req['t'])
        c.hello()
        c.send(req)
        f = c.recv()
        if f.get('t') != 'error' or f.get('code') != 'not_registered':
            fail('%s before register answered %r, want error not_registered' % (req['t'], f))
    assert_serving(t, good)
    t.stop()


def test_register_before_hello():
    t = Tracker()
    c = Raw(t.addr)
    key = Key()
    c.send({'t': 'register', 'name': 'alice', 'key': key.pk, 'sig': b'\x00' * 64,
            'endpoints': []})
    f = c.recv()
    if f.get('t') != 'error':
        fail('register before hello answered %r' % f)
    c.expect_closed()
    t.stop()


def test_already_registered():
    t = Tracker()
    c = registered_client(t, 'alice')
    r = c.register('alice2', hello=False)
    if r.get('t') != 'error' or r.get('code') != 'already_registered':
        fail('a second register on one connection answered %r' % r)
    t.stop()


def test_bad_names_over_the_wire():
    t = Tracker()
    good = registered_client(t, 'good')
    bad = [
        ('control character', RawStr(b'al\x01ice')),
        ('escape sequence', RawStr(b'\x1b[31mred')),
        ('DEL', RawStr(b'alice\x7f')),
        ('C1 control', RawStr(b'ali\xc2\x85ce')),
        ('invalid UTF-8 (lone byte)', RawStr(b'al\xffice')),
        ('overlong UTF-8', RawStr(b'\xc0\xaf')),
        ('surrogate', RawStr(b'a\xed\xa0\x80')),
        ('truncated UTF-8', RawStr(b'alice\xc3')),
        ('33 characters', 'a' * 33),
        ('33 emoji', '😀' * 33),
        ('empty', ''),
        ('space', 'alice bob'),
        ('tab', 'alice\tbob'),
        ('newline', 'alice\n'),
        ('zero-width space', 'ali\u200bce'),
        ('no-break space', 'ali\u00a0ce'),
        ('embedded NUL', RawStr(b'ali\x00ce')),
    ]
    for what, name in bad:
        c = Raw(t.addr, label='name with %s' % what)
        r = c.register(name)
        if r.get('t') != 'error' or r.get('code') != 'bad_name':
            fail('registering a name with %s answered %r, want error bad_name' % (what, r))
        if not r.get('msg'):
            fail('bad_name error without a message: %r' % r)
        c.expect_closed()
    # The limits themselves are fine.
    for ok in ('a' * 32, '😀' * 32, 'Émile', '山田'):
        registered_client(t, ok)
    users = good.list_all()
    for ok in ('a' * 32, '😀' * 32, 'Émile', '山田'):
        if ok not in users:
            fail('%r registered but not listed: %r' % (ok, users))
    t.stop()


def test_bad_name_in_lookup_keeps_connection():
    t = Tracker()
    c = registered_client(t, 'alice')
    for name in (RawStr(b'a\xffb'), 'a b', 'x' * 33):
        rid = c.next_id
        f = c.request({'t': 'lookup', 'name': name})
        if f.get('t') != 'error' or f.get('code') != 'bad_name' or f.get('id') != rid:
            fail('lookup of bad name %r answered %r, want error bad_name id %d' % (name, f, rid))
    c.ping()     # still open
    t.stop()


def test_frame_one_byte_at_a_time():
    """hello, register and a lookup, each sent one byte per TCP segment."""
    t = Tracker()
    c = Raw(t.addr, label='bytewise')

    def trickle(data):
        for i in range(len(data)):
            c.send_bytes(data[i:i + 1])
            if i + 1 < len(data):
                # Nothing may come back before the frame is complete.
                r, _, _ = select.select([c.sock], [], [], 0.002)
                if r:
                    fail('the tracker answered after %d of %d bytes: %r'
                         % (i + 1, len(data), c.sock.recv(100, 0x2)))

    trickle(msg({'t': 'hello', 'v': 1, 'role': 'peer'}))
    w = c.recv()
    harness.check_welcome(w)
    key = Key()
    trickle(msg({'t': 'register', 'name': 'alice', 'key': key.pk,
                 'sig': key.sign_register(w['nonce'], b'alice'), 'endpoints': ['127.0.0.1:1']}))
    r = c.recv()
    if r.get('t') != 'registered' or r.get('name') != 'alice':
        fail('bytewise register answered %r' % r)
    trickle(msg({'t': 'lookup', 'id': 3, 'name': 'alice'}))
    r = c.recv()
    if r.get('t') != 'lookup_result' or r.get('id') != 3 or r.get('key') != key.pk:
        fail('bytewise lookup answered %r' % r)
    t.stop()


def test_many_frames_in_one_send():
    t = Tracker(extra_args=['--rate-limit', '0'])   # 100+ pipelined frames is over the burst
    c = Raw(t.addr, label='coalesced')
    # hello and a ping together, before any answer.
    c.send_bytes(msg({'t': 'hello', 'v': 1, 'role': 'peer'}) + msg({'t': 'ping'}))
    w = c.recv()
    harness.check_welcome(w)
    c.nonce = w['nonce']
    f = c.recv()
    if f.get('t') not in ('pong', 'error'):
        fail('hello+ping coalesced: second answer %r' % f)
    if f.get('t') == 'error':
        # A ping before register may be refused, but then the connection is
        # gone: start again for the rest.
        c = Raw(t.addr, label='coalesced2')
        c.hello()
    c.must_register('alice')
    other = registered_client(t, 'bob')
    reqs = [{'t': 'lookup', 'id': 1, 'name': 'bob'}, {'t': 'list', 'id': 2},
            {'t': 'ping'}, {'t': 'lookup', 'id': 3, 'name': 'nobody'},
            {'t': 'list', 'id': 4, 'prefix': 'a'}]
    data = b''.join(msg(r) for r in reqs) * 20
    c.send_bytes(data)
    answers = []
    while len(answers) < 100:
        f = c.recv()
        if f.get('t') != 'presence':
            answers.append(f)
    for i, f in enumerate(answers):
        want = i % 5
        ok = [lambda f: f.get('t') == 'lookup_result' and f.get('id') == 1 and
              f.get('key') == other.key.pk,
              lambda f: f.get('t') == 'list_result' and f.get('id') == 2 and
              f.get('users') == ['alice', 'bob'],
              lambda f: f.get('t') == 'pong',
              lambda f: f.get('t') == 'error' and f.get('code') == 'not_found' and f.get('id') == 3,
              lambda f: f.get('t') == 'list_result' and f.get('id') == 4 and
              f.get('users') == ['alice']][want](f)
        if not ok:
            fail('answer %d to 100 coalesced requests is wrong: %r' % (i, f))
    c.ping()
    t.stop()


def test_frame_at_size_limit():
    """A payload of exactly 64 KiB is accepted (a ping padded with an unknown
    field); one byte more is too_big."""
    t = Tracker()
    c = registered_client(t, 'alice')

    def padded(total):
        base = pack_map({'t': 'ping', 'pad': RawStr(b'')})
        pad = total - (len(base) - 1) - 3   # a str16 header instead of the empty fixstr
        p = pack_map({'t': 'ping', 'pad': RawStr(b'x' * pad)})
        assert len(p) == total, (len(p), total)
        return p

    c.send_bytes(frame(padded(64 * 1024)))
    f = c.recv_skip_presence()
    if f.get('t') != 'pong':
        fail('a 65536-byte ping answered %r, want pong' % f)
    c.send_bytes(frame(padded(64 * 1024 + 1)))
    c.expect_error('too_big')
    t.stop()


def test_many_bad_clients_at_once():
    t = Tracker()
    good = registered_client(t, 'good')
    payloads = [b'\xff\xff\xff\xff', frame(b'\xc1'), b'\x00\x00\x00\x00',
                msg({'t': 'hello', 'v': 9, 'role': 'peer'}), msg({'t': 'nope'})]
    clients = []
    for i in range(40):
        c = Raw(t.addr, label='bad%d' % i)
        c.send_bytes(payloads[i % len(payloads)])
        clients.append(c)
    for c in clients:
        f = c.recv()
        if f.get('t') != 'error':
            fail('%s got %r' % (c.label, f))
        c.expect_closed()
    assert_serving(t, good)
    t.stop()


def test_client_vanishes_mid_frame():
    t = Tracker()
    good = registered_client(t, 'good')
    for i in range(10):
        c = Raw(t.addr, label='vanish%d' % i)
        c.send_bytes(msg({'t': 'hello', 'v': 1, 'role': 'peer'})[:5])
        c.close()
    c = Raw(t.addr, label='vanish-registered')
    c.must_register('gone')
    c.send_bytes(struct.pack('>I', 1000) + b'x' * 10)
    c.close()
    good.recv_type('presence')   # gone online
    p = good.recv_type('presence')
    if p.get('name') != 'gone' or p.get('online') is not False:
        fail('expected gone offline, got %r' % p)
    assert_serving(t, good)
    t.stop()


if __name__ == '__main__':
    harness.main(globals())

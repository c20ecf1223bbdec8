"""test_malformed: what the tracker does with broken or hostile input.  Each
bad frame must get the right error code, close that one connection, and
leave everyone else served.  Malformed names and fields of every kind (every
field with a value of every wrong msgpack type, SQL in every string) get a
clear error code and never reach the database malformed (checked afterwards
with the sqlite3 shell).  Also: the framing edge cases (a frame a byte at a
time, many frames in one send, the exact size limit)."""
import re
import select
import struct

import msgpack

import runner
from procs import Peer, Tracker, fail, sqlite
from sodium import Key
from wire import (Raw, RawStr, assert_serving, check_welcome, frame, msg, pack_map,
                  registered_client)


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


SQL = ["x'; DROP TABLE users; --", "' OR '1'='1", '"; DELETE FROM users; --', '%', '_',
       '\\', "%' OR 1=1 --", '*/--', 'a%b_c']

def is_space(c):
    """shared/name.c's is_space: Unicode White_Space plus the invisible
    formatting characters (zero-width, bidi controls)."""
    return (c == 0x20 or 0x09 <= c <= 0x0d or c in (0x85, 0xa0, 0x1680, 0x2028, 0x2029, 0x202f,
                                                    0x205f, 0x3000, 0xfeff, 0x061c) or
            0x2000 <= c <= 0x200f or 0x202a <= c <= 0x202e or 0x2060 <= c <= 0x2064 or
            0x2066 <= c <= 0x2069)

def name_ok(b):
    """The username rules of docs/PROTOCOL.md on raw bytes."""
    try:
        s = b.decode('utf-8', errors='strict')   # rejects overlong forms and surrogates
    except UnicodeDecodeError:
        return False
    if not 1 <= len(s) <= 32:
        return False
    for ch in s:
        c = ord(ch)
        if c < 0x20 or 0x7f <= c < 0xa0 or is_space(c):
            return False
    return True

ENDPOINT_RE = re.compile(r'^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\]):\d{1,5}$')

def check_db(path):
    """With the tracker stopped: integrity ok, and every row is well formed:
    name and folded pass the name rules, key is 32 bytes, endpoints are
    numeric HOST:PORT separated by spaces."""
    def q(sql):
        return sqlite(path, sql)
    if q('PRAGMA integrity_check') != ['ok']:
        fail('PRAGMA integrity_check: %r' % q('PRAGMA integrity_check'))
    rows = q("SELECT hex(name), hex(folded), length(key), typeof(key), hex(endpoints) FROM users")
    if not rows:
        fail('the users table is empty: the test registered nobody?')
    for row in rows:
        hname, hfold, klen, ktype, heps = row.split('|')
        name, folded, eps = bytes.fromhex(hname), bytes.fromhex(hfold), bytes.fromhex(heps)
        if not name_ok(name) or not name_ok(folded):
            fail('malformed name in the database: %r (folded %r)' % (name, folded))
        if ktype != 'blob' or klen != '32':
            fail('key of %r is a %s of %s bytes, want a 32-byte blob' % (name, ktype, klen))
        for e in eps.decode('utf-8', errors='replace').split():
            if not ENDPOINT_RE.match(e):
                fail('malformed endpoint %r stored for %r' % (e, name))
    return len(rows)

def expect_code(c, code, what, closed=True, id=None):
    f = c.recv_skip_presence()
    if f.get('t') != 'error' or f.get('code') != code:
        fail('%s answered %r, want error %s' % (what, f, code))
    if not isinstance(f.get('msg'), str) or not f['msg']:
        fail('%s: error %s without a readable msg: %r' % (what, code, f))
    if id is not None and f.get('id') != id:
        fail('%s: error should answer id %r: %r' % (what, id, f))
    if closed:
        c.expect_closed()
    return f


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


WRONG = {   # a value of each msgpack type
    'nint': -1,
    'bigneg': -2 ** 63,
    'uint': 7,
    'huge': 2 ** 64 - 1,
    'float': 1.0,
    'bool': True,
    'str': 'x',
    'bin': b'\x00' * 32,
    'array': ['127.0.0.1:1'],
    'map': {'a': 1},
    'ext': msgpack.ExtType(5, b'\x01\x02'),
}

# message -> field -> the types it accepts (values of other types are wrong)
FIELDS = {
    'hello': {'v': {'uint', 'huge'}, 'role': {'str'}},
    'register': {'name': {'str'}, 'key': set(), 'sig': set(), 'endpoints': set()},
    'list': {'id': {'uint', 'huge'}, 'prefix': {'str'}, 'limit': {'uint', 'huge'},
             'cursor': {'str'}},
    'lookup': {'id': {'uint', 'huge'}, 'name': {'str'}},
}

def _pack_any(v):
    return msgpack.packb(v, use_bin_type=True)

def raw_msg(d):
    """Frame of d with any msgpack values (ExtType, floats...)."""
    body = b''.join(_pack_any(k) + _pack_any(v) for k, v in d.items())
    n = len(d)
    return frame((bytes([0x80 | n]) if n < 16 else b'\xde' + struct.pack('>H', n)) + body)

def test_wrong_types_in_every_field():
    t = Tracker()
    good = registered_client(t, 'good')
    key = Key()
    ncase = 0
    for mtype, fields in FIELDS.items():
        for field, accepted in fields.items():
            for tname, value in WRONG.items():
                if tname in accepted:
                    continue
                ncase += 1
                what = '%s.%s as %s' % (mtype, field, tname)
                if mtype == 'hello':
                    d = {'t': 'hello', 'v': 1, 'role': 'peer'}
                    d[field] = value
                    c = Raw(t.addr, label=what)
                    c.send_bytes(raw_msg(d))
                    expect_code(c, 'bad_message', what)
                elif mtype == 'register':
                    c = Raw(t.addr, label=what)
                    c.hello()
                    d = {'t': 'register', 'name': 'victim', 'key': key.pk,
                         'sig': key.sign_register(c.nonce, b'victim'), 'endpoints': ['127.0.0.1:1']}
                    d[field] = value
                    if field in ('key', 'sig') and tname == 'bin':
                        d[field] = b'\x00' * 31              # a bin of the wrong size
                    if field == 'endpoints' and tname == 'array':
                        d[field] = [5]                  # an array of the wrong element type
                    c.send_bytes(raw_msg(d))
                    expect_code(c, 'bad_message', what)
                else:
                    c = registered_client(t, 'req%d' % ncase)
                    d = {'t': mtype, 'id': 9}
                    if mtype == 'lookup':
                        d['name'] = 'good'
                    d[field] = value
                    c.send_bytes(raw_msg(d))
                    expect_code(c, 'bad_message', what)
    # Negative and huge integers where a uint is right.
    c = registered_client(t, 'ints')
    for lim in (2 ** 64 - 1, 2 ** 32, 0):
        rid = c.next_id
        f = c.request({'t': 'list', 'limit': lim})
        if f.get('t') != 'list_result' or f.get('id') != rid:
            fail('list limit %d answered %r' % (lim, f))
    c.send_bytes(raw_msg({'t': 'list', 'id': 2 ** 64 - 1}))
    f = c.recv_skip_presence()
    if f.get('t') != 'list_result' or f.get('id') != 2 ** 64 - 1:
        fail('list id 2^64-1 answered %r' % f)
    h = Raw(t.addr, label='hello v huge')
    h.send_bytes(raw_msg({'t': 'hello', 'v': 2 ** 64 - 1, 'role': 'peer'}))
    expect_code(h, 'version', 'hello v 2^64-1')
    # SQL metacharacters in the remaining string fields: cursor, prefix,
    # role, endpoints.
    for s in SQL:
        f = c.request({'t': 'list', 'cursor': s[:32], 'prefix': s})
        if f.get('t') != 'list_result':
            fail('list with cursor/prefix %r answered %r' % (s, f))
    for s in SQL:
        h = Raw(t.addr, label='role %r' % s)
        h.send({'t': 'hello', 'v': 1, 'role': s})
        expect_code(h, 'bad_message', 'hello role %r' % s)
    for s in ["1.2.3.4:5'--", "127.0.0.1:1; DROP TABLE users", "[::1]:1' OR '1'='1", '%:%',
              '127.0.0.1:1 127.0.0.2:2', '127.0.0.1:99999', '127.0.0.1:-1', 'localhost:1',
              'e' * 10000]:
        r = Raw(t.addr, label='endpoint %r' % s[:40])
        f = r.register('epvictim', endpoints=[s])
        if f.get('t') != 'error' or f.get('code') != 'bad_message':
            fail('register with endpoint %r answered %r, want bad_message' % (s[:60], f))
        r.expect_closed()
    assert_serving(t, good)
    # None of the refused registers bound the name.
    registered_client(t, 'victim')
    t.stop()
    check_db(t.db)
    print('%d wrong-type cases' % ncase)


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
    check_welcome(w)
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


def test_hostile_names_rejected_and_db_clean():
    t = Tracker()
    good = registered_client(t, 'good')
    bad = [
        ('10 KB name', 'n' * 10240),
        ('10 KB of invalid UTF-8', RawStr(b'\xff' * 10240)),
        ('64 KB name', RawStr(b'a' * 60000)),
        ('control characters', RawStr(b'ev\x00il\x07\x1b[2J')),
        ('C1 control', RawStr(b'a\xc2\x9bb')),
        ('DEL', 'a\x7f'),
        ('lone continuation byte', RawStr(b'\x80abc')),
        ('overlong slash', RawStr(b'a\xc0\xafb')),
        ('overlong NUL', RawStr(b'a\xc0\x80b')),
        ('surrogate half', RawStr(b'\xed\xb0\x80')),
        ('beyond U+10FFFF', RawStr(b'\xf4\x90\x80\x80')),
        ('5-byte sequence', RawStr(b'\xf8\x88\x80\x80\x80')),
        ('right-to-left override', 'admin\u202eexe'),
        ('left-to-right isolate', 'ad\u2066min'),
        ('pop directional isolate', 'admin\u2069'),
        ('arabic letter mark', 'ad\u061cmin'),
        ('zero-width joiner', 'ad\u200dmin'),
        ('word joiner', 'ad\u2060min'),
        ('byte order mark', '\ufeffadmin'),
        ('ideographic space', 'ad\u3000min'),
        ('line separator', 'ad\u2028min'),
        ('SQL with spaces', SQL[0]),
        ('SQL with spaces 2', SQL[1]),
        ('33 characters', 'x' * 33),
    ]
    for what, name in bad:
        c = Raw(t.addr, label='name: %s' % what)
        f = c.register(name)
        if f.get('t') != 'error' or f.get('code') != 'bad_name':
            fail('registering a name with %s answered %r, want error bad_name' % (what, f))
        c.expect_closed()
        # The same name in a lookup: bad_name for that request, connection open.
        rid = good.next_id
        f = good.request({'t': 'lookup', 'name': name})
        if f.get('t') != 'error' or f.get('code') != 'bad_name' or f.get('id') != rid:
            fail('lookup of a name with %s answered %r, want error bad_name id %d' % (what, f, rid))
    # SQL metacharacters without whitespace are valid names: they must be
    # stored and found literally.
    sqlish = [s for s in SQL if name_ok(s.encode())]
    for s in sqlish:
        registered_client(t, s)
    for s in sqlish:
        f = good.lookup(s)
        if f.get('t') != 'lookup_result' or f.get('name') != s:
            fail('lookup %r answered %r' % (s, f))
    # A prefix is a literal prefix, not a LIKE pattern or SQL.
    users = good.list_all()
    for p in sqlish + SQL:
        got = sorted(good.list_all(prefix=p))
        want = sorted(u for u in users if u.lower().startswith(p.lower()) and name_ok(p.encode()))
        if got != want:
            fail('list prefix %r gave %r, want %r' % (p, got, want))
    assert_serving(t, good)
    t.stop()
    n = check_db(t.db)
    if n != 1 + len(sqlish):
        fail('%d rows in the database, want %d' % (n, 1 + len(sqlish)))


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
    check_welcome(w)
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
    check_welcome(w)
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
    runner.main(globals())

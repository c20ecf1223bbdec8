#!/usr/bin/python3
"""make_seeds: writes the seed corpus of every fuzz harness into
tests/fuzz/corpus/<harness>/ (run it again after a protocol change; the files
are committed).  Each seed is a valid frame, or a short valid conversation,
of every message type in docs/PROTOCOL.md, in the input layout the harness
expects (see the comment at the top of each tests/fuzz/fuzz_*.c).

    /usr/bin/python3 tests/fuzz/make_seeds.py
"""
import hashlib
import os
import struct

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, 'corpus')

K32 = bytes(range(32))
S64 = bytes(range(64))


def pack(d):
    return msgpack.packb(d, use_bin_type=True)


def frame(d):
    p = d if isinstance(d, bytes) else pack(d)
    return struct.pack('>I', len(p)) + p


# ---- the messages of the protocol, one or more examples each

CONTROL_TO_TRACKER = [
    {'t': 'hello', 'v': 1, 'role': 'peer'},
    {'t': 'hello', 'v': 2, 'role': 'peer'},
    {'t': 'hello', 'v': 1, 'role': 'relay'},
    {'t': 'register', 'name': 'alice', 'key': K32, 'sig': S64, 'endpoints': ['127.0.0.1:4000']},
    {'t': 'register', 'name': 'bob', 'key': K32, 'sig': S64, 'endpoints': [],
     'features': ['connect_failed', None]},
    {'t': 'register', 'name': 'x' * 40, 'key': K32, 'sig': S64, 'endpoints': ['[::1]:1'] * 17},
    {'t': 'list', 'id': 1},
    {'t': 'list', 'id': 2, 'prefix': 'a', 'limit': 1},
    {'t': 'list', 'id': 3, 'prefix': '\u00c9', 'limit': 500, 'cursor': 'alice'},
    {'t': 'list', 'id': 4, 'limit': 0, 'cursor': "x' OR 1=1 --"},
    {'t': 'list', 'id': 5, 'limit': 2 ** 64 - 1, 'prefix': '%_'},
    {'t': 'lookup', 'id': 6, 'name': 'alice'},
    {'t': 'lookup', 'id': 7, 'name': '\u00e9MILE'},
    {'t': 'lookup', 'id': 8, 'name': 'nobody'},
    {'t': 'lookup', 'id': 9, 'name': 'bad name'},
    {'t': 'ping'},
    {'t': 'pong'},
    {'t': 'error', 'code': 'internal', 'msg': 'boom'},
    {'t': 'error', 'code': 'not_found', 'msg': 'x', 'id': 3},
    {'t': 'relay_open', 'id': 1},
    {'t': 'connect_request', 'name': 'alice'},
    {'t': 'connect_request', 'id': 10, 'to': 'alice'},
    {'t': 'relay_request', 'id': 11, 'to': 'bob'},
    {'t': 'connect_failed', 'to': 'alice', 'reason': 'no endpoint answered (tried 4)'},
    {'t': 'connect_failed', 'to': 'nobody', 'reason': '\u00e9' * 150},
    {'t': 'nonsense'},
    {'t': 'mail_put', 'id': 1, 'to': 'alice', 'box': b'\x00sealed' * 8},
    {'t': 'mail_put', 'id': 2 ** 64 - 1, 'to': '\u00e9MILE', 'box': bytes(8192)},
    {'t': 'mail_put', 'id': 3, 'to': 'fuzzer', 'box': b'x'},
    {'t': 'mail_put', 'id': 4, 'to': 'nobody', 'box': b'x'},
    {'t': 'mail_put', 'id': 0, 'to': 'bob', 'box': b''},
    {'t': 'mail_ack', 'mid': 1},
    {'t': 'mail_ack', 'mid': 2, 'ok': False},
    {'t': 'mail_ack', 'mid': 2 ** 63, 'ok': None},
    {'t': 'receipt_ack', 'rid': 1},
    {'t': 'receipt_ack', 'rid': 'x'},
    # hole punching: residents list punch, so 'alice' reaches the success
    # path; 'fuzzer' is the registered connection's own name
    {'t': 'punch_request', 'id': 12, 'to': 'alice'},
    {'t': 'punch_request', 'id': 13, 'to': '\u00e9MILE'},
    {'t': 'punch_request', 'id': 14, 'to': 'fuzzer'},
    {'t': 'punch_request', 'id': 15, 'to': 'nobody'},
    {'t': 'punch_request', 'id': 16, 'to': 'bad name'},
    {'t': 'punch_request', 'to': 'bob'},
    {'t': 'punch_request', 'id': 'x', 'to': 'bob'},
    {'t': 'punch_request', 'id': 17, 'to': 5},
    # presence by subscription: names, all mode, the limits, bad entries
    {'t': 'subscribe', 'id': 18, 'names': ['alice', 'BOB', '\u00e9mile', 'nobody', 'alice']},
    {'t': 'subscribe', 'id': 19, 'all': True},
    {'t': 'subscribe', 'id': 20, 'names': ['n%d' % i for i in range(1001)]},
    {'t': 'subscribe', 'id': 21, 'names': ['bad name', 'alice']},
    {'t': 'subscribe', 'id': 22, 'names': ['alice', 7]},
    {'t': 'subscribe', 'id': 23, 'names': 'alice', 'all': 'yes'},
    {'t': 'subscribe', 'names': []},
    {'t': 'unsubscribe', 'id': 24, 'names': ['ALICE', 'nobody', 'bad name']},
    {'t': 'unsubscribe', 'id': 25, 'all': True},
    {'t': 'unsubscribe', 'id': 26},
]

TRACKER_TO_PEER = [
    {'t': 'welcome', 'v': 1, 'nonce': K32, 'observed': '127.0.0.1:1', 'ttl': 60},
    {'t': 'welcome', 'v': 1, 'nonce': K32, 'observed': '127.0.0.1:1', 'ttl': 60,
     'features': ['connect_failed', 7]},
    {'t': 'registered', 'name': 'fuzzpeer', 'observed': '127.0.0.1:1'},
    {'t': 'lookup_result', 'id': 1, 'name': 'mallory', 'key': K32, 'online': True,
     'endpoints': ['127.0.0.1:9', '[::1]:9', 'host:1'], 'observed': '127.0.0.1:2',
     'last_seen': 1700000000},
    {'t': 'list_result', 'id': 2, 'users': ['alice', 'bob'], 'next': 'bob'},
    {'t': 'list_result', 'id': 3, 'users': ['carol']},
    {'t': 'presence', 'name': 'alice', 'online': True},
    {'t': 'presence', 'name': 'alice', 'online': False},
    {'t': 'pong'},
    {'t': 'error', 'code': 'not_found', 'msg': 'no user', 'id': 1},
    {'t': 'error', 'code': 'replaced', 'msg': 'again'},
    {'t': 'error', 'code': 'name_taken', 'msg': 'taken'},
    {'t': 'error', 'code': 'shutdown', 'msg': 'bye'},
    {'t': 'connect_failed', 'from': 'mallory', 'reason': 'no endpoint answered (tried 2)'},
    {'t': 'connect_request', 'from': 'mallory', 'key': K32, 'endpoints': ['127.0.0.1:9'],
     'observed': '127.0.0.1:2'},
    {'t': 'welcome', 'v': 1, 'nonce': K32, 'observed': '127.0.0.1:1', 'ttl': 60,
     'features': ['connect_failed', 'mailbox']},
    {'t': 'mail_stored', 'id': 1001, 'to': 'mallory'},
    {'t': 'mail', 'mid': 1, 'from': 'mallory', 'key': K32, 'ts': 1700000000, 'box': b'\x00' * 120},
    {'t': 'mail', 'mid': 2, 'from': 'mallory', 'key': K32, 'ts': 1, 'box': b''},
    {'t': 'receipt', 'rid': 1, 'to': 'mallory', 'id': 1001, 'status': 'delivered'},
    {'t': 'receipt', 'rid': 2, 'to': 'mallory', 'id': 1001, 'status': 'expired'},
    {'t': 'receipt', 'rid': 3, 'to': 'mallory', 'id': 7, 'status': 'later'},
    {'t': 'error', 'code': 'mailbox_full', 'msg': 'full', 'id': 1001},
    {'t': 'welcome', 'v': 1, 'nonce': K32, 'observed': '127.0.0.1:1', 'ttl': 60,
     'features': ['connect_failed', 'mailbox', 'punch']},
    {'t': 'welcome', 'v': 1, 'nonce': K32, 'observed': '127.0.0.1:1', 'ttl': 60,
     'features': ['connect_failed', 'mailbox', 'punch', 'subscribe']},
    {'t': 'subscribed', 'id': 2 ** 63 + 1, 'count': 3, 'online': ['alice']},
    {'t': 'subscribed', 'id': 2 ** 63 + 2, 'count': 'x'},
    {'t': 'unsubscribed', 'id': 2 ** 63 + 3, 'count': 0},
    {'t': 'presence_mode', 'all': False},
    {'t': 'presence_mode', 'all': 'no'},
    {'t': 'error', 'code': 'too_many_subscriptions', 'msg': 'limit', 'id': 2 ** 63 + 1},
    {'t': 'ping'},
    {'t': 'punch_result', 'id': 1, 'addr': '127.0.0.1:2', 'delay_ms': 0},
    {'t': 'punch_result', 'id': 2, 'addr': '[::1]:2', 'delay_ms': 2 ** 64 - 1},
    {'t': 'punch_result', 'id': 9, 'addr': 'host:1', 'delay_ms': 5},
    {'t': 'punch', 'from': 'mallory', 'key': K32, 'addr': '127.0.0.1:2', 'delay_ms': 0},
    {'t': 'punch', 'from': 'mallory', 'key': K32, 'addr': '[::1]:2', 'delay_ms': 30},
    {'t': 'punch', 'from': 'mallory', 'key': K32, 'addr': '127.0.0.1:2', 'delay_ms': 2 ** 64 - 1},
    {'t': 'punch', 'from': 'fuzzpeer', 'key': K32[:31], 'addr': 'nowhere', 'delay_ms': -1},
    {'t': 'error', 'code': 'unsupported', 'msg': 'cannot punch', 'id': 1},
]

CHAT = [
    {'t': 'hello', 'v': 2, 'role': 'chat', 'name': 'mallory', 'key': K32, 'nonce': K32,
     'ekey': K32, 'to': 'fuzzpeer'},
    {'t': 'hello', 'v': 2, 'role': 'chat', 'name': 'mallory', 'key': K32, 'nonce': K32,
     'ekey': K32},
    {'t': 'auth', 'sig': S64, 'header': K32[:24]},
    {'t': 'msg', 'id': 1, 'ts': 1700000000000, 'text': 'hi'},
    {'t': 'msg', 'id': 2, 'ts': -1, 'text': 'tab\there \x01\x7f\\ caf\u00e9'},
    {'t': 'msg', 'id': 2, 'ts': 0, 'text': 'dup'},
    {'t': 'msg', 'id': 3, 'ts': 0, 'text': 'y' * 4000},
    {'t': 'ack', 'id': 1001},
    {'t': 'ack', 'id': 7},
    {'t': 'ping'},
    {'t': 'pong'},
    {'t': 'bye'},
    {'t': 'error', 'code': 'bad_signature', 'msg': 'no'},
]


def write(harness, data):
    d = os.path.join(CORPUS, harness)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


def seeds_frame():
    allmsgs = CONTROL_TO_TRACKER + TRACKER_TO_PEER + CHAT
    stream = b''.join(frame(m) for m in allmsgs)
    for flags in (0x00, 0x08, 0x10, 0x18, 0x38, 0x78, 0xf8, 0x04, 0x02):
        write('frame', bytes([flags, 0x12, 0x34]) + stream)
    write('frame', bytes([0x10, 0, 1]) + frame({'t': 'ping'}) + b'\0\0\0\0')
    write('frame', bytes([0x00, 0, 2]) + b'\x00\x01\x00\x01' + b'x' * 100)
    write('frame', bytes([0x20, 0, 3]) + b'\x00\x01\x00\x00' + b'y' * 65536 + frame({'t': 'ping'}))


def seeds_msg():
    for m in CONTROL_TO_TRACKER + TRACKER_TO_PEER + CHAT:
        write('msg', pack(m))
    write('msg', pack({'t': 'x', 'name': '\u0130stanbul', 'to': 'ǅemal'}))
    write('msg', pack({'t': 'x', 'endpoints': ['[fe80::1%eth0]:1', '1.2.3.4:65535', '[::]:0']}))
    write('msg', b'\x81\xa1t\xa4ping')
    write('msg', b'\xdf\xff\xff\xff\xff')


def seeds_tracker():
    # mode 0: the stream from the first byte (hello first, then anything)
    hello = frame({'t': 'hello', 'v': 1, 'role': 'peer'})
    for m in CONTROL_TO_TRACKER:
        write('tracker', b'\x00' + frame(m))
        write('tracker', b'\x00' + hello + frame(m))
    # mode 1: registered as "fuzzer" first; every request type follows
    for m in CONTROL_TO_TRACKER:
        write('tracker', b'\x01' + frame(m))
    write('tracker', b'\x01' + b''.join(frame(m) for m in CONTROL_TO_TRACKER[5:16]))
    write('tracker', b'\x0d' + b''.join(frame(m) for m in CONTROL_TO_TRACKER[5:16]))  # 8-byte chunks
    # the mailbox: puts, then acknowledgements of the mids and rids they may get
    mail = [m for m in CONTROL_TO_TRACKER if m['t'] in ('mail_put', 'mail_ack', 'receipt_ack')]
    write('tracker', b'\x01' + b''.join(frame(m) for m in mail))
    # a hole punch, then the pong answering the tracker's ping (a round trip)
    punch = [m for m in CONTROL_TO_TRACKER if m['t'] == 'punch_request']
    write('tracker', b'\x01' + frame({'t': 'pong'}) + b''.join(frame(m) for m in punch[:5]) +
          frame({'t': 'pong'}))
    # presence by subscription: subscribe, a resident coming and going is
    # pushed through the index, unsubscribe, all mode
    subs = [m for m in CONTROL_TO_TRACKER if m['t'] in ('subscribe', 'unsubscribe')]
    write('tracker', b'\x01' + b''.join(frame(m) for m in subs[:2] + subs[7:]))
    write('tracker', b'\x01' + b''.join(frame(m) for m in subs))
    # mode 2: the register's name and endpoints come from the input
    def reg(name, eps, tail):
        b = bytes([len(name)]) + name + bytes([len(eps)])
        for e in eps:
            b += bytes([len(e)]) + e
        return b'\x02' + b + tail
    tail = frame({'t': 'list', 'id': 1}) + frame({'t': 'lookup', 'id': 2, 'name': 'alice'})
    write('tracker', reg(b'carol', [b'127.0.0.1:4000', b'[::1]:4000'], tail))
    write('tracker', reg('\u00c9mile'.encode(), [b'10.0.0.1:1'], tail))
    write('tracker', reg(b"x'); DROP TABLE users; --", [b"1.2.3.4:5'--"], tail))
    write('tracker', reg(b'\xff\xfe', [], tail))
    write('tracker', reg(b'a\x00b', [b'127.0.0.1:1'], tail))
    write('tracker', reg(b'z' * 33, [b'127.0.0.1:1'] * 17, tail))


def seeds_peer():
    # mode 0: the input plays the tracker
    w, r = frame(TRACKER_TO_PEER[0]), frame(TRACKER_TO_PEER[1])
    write('peer', b'\x00' + w + r + b''.join(frame(m) for m in TRACKER_TO_PEER[2:8]))
    for m in TRACKER_TO_PEER:
        write('peer', b'\x00' + w + r + frame(m))
    write('peer', b'\x00' + w + frame(next(m for m in TRACKER_TO_PEER if m.get('rid') == 3)))
    # a tracker that punches: its ping, punch pushes and stray punch_results
    wp = frame(next(m for m in TRACKER_TO_PEER if 'punch' in m.get('features', [])))
    pm = [m for m in TRACKER_TO_PEER if m['t'] in ('ping', 'punch', 'punch_result')]
    write('peer', b'\x00' + wp + r + b''.join(frame(m) for m in pm))
    for m in pm:
        write('peer', b'\x00' + wp + r + frame(m))
    # 1, 3: the handshake from scratch (acceptor side, dialer side)
    for mode, hello in ((1, CHAT[0]), (3, CHAT[1])):
        write('peer', bytes([mode]) + frame(hello) + frame(CHAT[2]))
        for m in CHAT:
            write('peer', bytes([mode]) + frame(m))
    # 2, 4: after a valid handshake; with and without a queued message (bit 7)
    # and echo (bit 3).  The harness seals each whole frame (PROTOCOL.md
    # "sealed"), so these are the plaintext maps the peer will open.
    up = b''.join(frame(m) for m in CHAT[3:12])
    for mode in (2, 4):
        for flags in (0x00, 0x08, 0x80, 0x88, 0x30):
            write('peer', bytes([mode | flags]) + up)
        for m in CHAT:
            write('peer', bytes([mode]) + frame(m))


def main():
    for h in ('frame', 'msg', 'tracker', 'peer'):
        d = os.path.join(CORPUS, h)
        for f in os.listdir(d) if os.path.isdir(d) else ():
            if not f.startswith('regress-'):  # inputs that once crashed stay
                os.unlink(os.path.join(d, f))
    seeds_frame()
    seeds_msg()
    seeds_tracker()
    seeds_peer()
    for h in sorted(os.listdir(CORPUS)):
        print('%s: %d seeds' % (h, len(os.listdir(os.path.join(CORPUS, h)))))


if __name__ == '__main__':
    main()

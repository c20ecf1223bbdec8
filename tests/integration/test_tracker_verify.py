"""test_tracker_verify: a register's signature is checked on a verify
thread (--verify-threads, tracker/verifier.c) while the loop goes on.
Connections that vanish with their signature still being checked are
dropped without harm (the tracker keeps serving, nothing of them stays
online, the sanitizers stay quiet at exit), a tracker stopped with checks
in flight exits cleanly, and --verify-threads 0 (in the loop) answers as
before."""
import socket
import struct
import time

import runner
from procs import Tracker, fail
from sodium import Key
from wire import Raw, assert_serving, msg, registered_client

OPEN = ['--max-conns-per-addr', '0', '--rate-limit', '0']
BURST = 150  # connections per burst: their checks queue up behind each other


def burst(t, prefix, bad_every=3):
    """BURST connections past hello, then a register on each (every
    bad_every-th with a signature over the wrong name), all sent back to
    back without reading; the connections, still open."""
    conns = []
    for i in range(BURST):
        c = Raw(t.addr, label='%s%d' % (prefix, i))
        c.hello()
        conns.append(c)
    frames = []
    for i, c in enumerate(conns):
        name = '%s%d' % (prefix, i)
        c.key = Key()
        signed = ('x' + name) if i % bad_every == 0 else name
        frames.append(msg({'t': 'register', 'name': name, 'key': c.key.pk,
                           'endpoints': ['127.0.0.1:9'],
                           'sig': c.key.sign_register(c.nonce, signed.encode())}))
    # Signed first, sent after: the registers arrive faster than one
    # thread checks them.
    for c, f in zip(conns, frames):
        c.send_bytes(f)
    return conns


def abort(conns):
    """Closes each with a reset, the way a crashing client goes."""
    for c in conns:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        c.close()


def online_besides(client, keep):
    return [u for u in client.list_all() if u not in keep]


def test_close_while_signature_checked():
    t = Tracker(extra_args=OPEN + ['--verify-threads', '1', '--log-level', 'debug'])
    stay = registered_client(t, 'stay')
    for r in range(3):
        abort(burst(t, 'gone%d-' % r))
    # The drop path ran at least once (the checks queue behind each other,
    # the resets arrive meanwhile); a timing that never hit it would make
    # this test prove nothing, so it says so.
    t.proc.wait_stderr(r"closed while its register's signature was checked; dropped", 20)
    assert_serving(t, stay)
    # Registrations whose check finished before their reset was read were
    # bound and then unbound by their commit callback or their close:
    # none of them is online once the tracker has caught up.
    # Their offline writes commit in later batches (an fsync each): asked
    # again, one round trip apart, until the list is down to stay.
    deadline = time.monotonic() + 10
    while online_besides(stay, ['stay']) and time.monotonic() < deadline:
        stay.ping()
    left = online_besides(stay, ['stay'])
    if left:
        fail('users of vanished connections still listed online: %r' % left[:10])
    # A name that was never bound is free for anyone.
    again = registered_client(t, 'gone0-0')  # its signature was bad: never bound
    assert_serving(t, again)
    t.stop()


def test_many_checks_in_flight_each_answered():
    """Many registers in flight at once on separate connections: each gets
    its own answer, registered or bad_signature, on its own connection."""
    t = Tracker(extra_args=OPEN + ['--verify-threads', '2'])
    conns = burst(t, 'ok', bad_every=4)
    for i, c in enumerate(conns):
        f = c.recv_skip_presence()
        want = 'bad_signature' if i % 4 == 0 else None
        if want and (f.get('t') != 'error' or f.get('code') != want):
            fail('%s: a register signed over another name answered %r' % (c.label, f))
        if not want and (f.get('t') != 'registered' or f.get('name') != 'ok%d' % i):
            fail('%s: register answered %r, want registered ok%d' % (c.label, f, i))
    t.stop()


def test_stop_with_checks_in_flight():
    t = Tracker(extra_args=OPEN + ['--verify-threads', '1'])
    conns = burst(t, 'late')
    t.stop()  # exit 0, nothing reported by the sanitizers
    for c in conns:
        c.close()


def test_verify_in_loop():
    t = Tracker(extra_args=['--verify-threads', '0'])
    a = registered_client(t, 'alice')
    c = Raw(t.addr, label='forger')
    r = c.register('bob', sig=b'\0' * 64)
    if r.get('t') != 'error' or r.get('code') != 'bad_signature':
        fail('a bad signature with --verify-threads 0 answered %r' % r)
    assert_serving(t, a)
    t.stop()


if __name__ == '__main__':
    runner.main(globals())

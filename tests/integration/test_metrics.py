"""test_metrics: the tracker's --metrics responder, scraped with curl as an
operator would: the numbers move as peers register, list, look up and chat;
a bad frame and an oversized frame show up by reason; anything but GET
/metrics gets 404 or 405; an oversized request gets 431; an idle
connection is closed; and the format is Prometheus text 0.0.4."""
import re
import shutil
import socket
import struct
import subprocess
import time

import runner
from procs import BUILD, Peer, SANITIZER_MARKS, Tracker, connect, fail, start_peers, tempdir
from wire import Raw

SAMPLE = re.compile(r'^([a-z_]+)(\{[a-z_]+="[^"]*"\})? (\S+)$')


def metrics_tracker():
    t = Tracker(extra_args=('--metrics', '127.0.0.1:0'))
    m, _ = t.proc.wait_stderr(r'metrics on (127\.0\.0\.1:\d+)', timeout=15)
    return t, m.group(1)


def curl(addr, path='/metrics'):
    if not shutil.which('curl'):
        fail('curl is not installed (make deps installs it)')
    r = subprocess.run(['curl', '-sS', '--max-time', '10', '-o', '-', '-w', '\n%{http_code}',
                        '-D', '/dev/stderr', 'http://%s%s' % (addr, path)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    if r.returncode != 0:
        fail('curl %s%s failed: %s' % (addr, path, r.stderr.decode(errors='replace')))
    body, _, code = r.stdout.decode().rpartition('\n')
    return int(code), body, r.stderr.decode(errors='replace')


def scrape(addr):
    code, body, headers = curl(addr)
    if code != 200:
        fail('GET /metrics: status %d' % code)
    if 'text/plain; version=0.0.4' not in headers:
        fail('GET /metrics: not Prometheus text 0.0.4:\n' + headers)
    values, typed = {}, set()
    for line in body.splitlines():
        if line.startswith('# TYPE '):
            typed.add(line.split()[2])
            continue
        if line.startswith('#'):
            continue
        m = SAMPLE.match(line)
        if not m:
            fail('not a Prometheus sample line: %r' % line)
        base = re.sub(r'_(bucket|sum|count)$', '', m.group(1))
        if m.group(1) not in typed and base not in typed:
            fail('%s has no # TYPE line' % m.group(1))
        values[m.group(1) + (m.group(2) or '')] = float(m.group(3))
    return values


def wait_value(addr, key, pred, what, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        v = scrape(addr)
        if pred(v.get(key)):
            return v
        if time.monotonic() > deadline:
            fail('%s: %s is %r, want %s' % (addr, key, v.get(key), what))
        time.sleep(0.1)


def test_metrics_move_during_a_chat():
    t, maddr = metrics_tracker()
    v0 = scrape(maddr)
    for k in ('parley_users_online', 'parley_registrations_total', 'parley_lookups_total',
              'parley_lists_total', 'parley_relay_sessions_open', 'parley_relay_bytes_total',
              'parley_connections_refused_total{reason="max_conns_per_addr"}',
              'parley_frames_rejected_total{reason="bad_frame"}',
              'parley_db_commit_seconds_count', 'parley_db_commit_seconds_bucket{le="+Inf"}',
              'parley_lookup_cache_records', 'parley_lookup_cache_hits_total',
              'parley_lookup_cache_misses_total'):
        if k not in v0:
            fail('metric %s missing; have %s' % (k, sorted(v0)))
    if v0['parley_users_online'] != 0 or v0['parley_registrations_total'] != 0:
        fail('a fresh tracker reports %r' % v0)
    alice, bob = start_peers(t.addr, 'alice', 'bob')
    v = wait_value(maddr, 'parley_users_online', lambda x: x == 2, '2')
    if v['parley_registrations_total'] != 2:
        fail('registrations_total %r after two registrations' % v['parley_registrations_total'])
    if v['parley_db_commit_seconds_count'] <= v0['parley_db_commit_seconds_count']:
        fail('no database commit counted after two registrations')
    alice.send('/list')
    alice.expect(r'^users 2: alice bob$')
    connect(alice, bob)   # a dial looks bob up
    alice.send('hello bob')
    bob.expect(r'^msg alice: hello bob$')
    alice.expect(r'^delivered bob #1$')
    v = scrape(maddr)
    if v['parley_lists_total'] < 1 or v['parley_lookups_total'] < 1:
        fail('lists %r lookups %r after /list and /dial' % (v['parley_lists_total'],
                                                          v['parley_lookups_total']))
    # Both registrations put their records in memory; the dial's lookup of
    # bob was answered from there.
    if v['parley_lookup_cache_records'] != 2 or v['parley_lookup_cache_hits_total'] < 1 or \
            v['parley_lookup_cache_misses_total'] != 0:
        fail('lookup cache: %r records, %r hits, %r misses after two registrations and a dial' % (
            v['parley_lookup_cache_records'], v['parley_lookup_cache_hits_total'],
            v['parley_lookup_cache_misses_total']))
    # A relay session (raw clients, as in test_relay): sessions open and
    # bytes relayed move.
    from test_relay import join, recv_exactly, relay_conn, relay_pair
    ca, cb, token = relay_pair(t, 'dave', 'erin')
    ra, rb = relay_conn(t, 'relay dave'), relay_conn(t, 'relay erin')
    join(ra, token, 'dave', ca.key)
    join(rb, token, 'erin', cb.key)
    ra.recv_type('relay_ready')
    rb.recv_type('relay_ready')
    v = wait_value(maddr, 'parley_relay_sessions_open', lambda x: x == 1, '1')
    ra.send_bytes(b'x' * 5000)
    recv_exactly(rb.sock, 5000)
    v = wait_value(maddr, 'parley_relay_bytes_total', lambda x: x is not None and x >= 5000,
                   '>= 5000')
    ra.close()
    rb.expect_closed(10)
    wait_value(maddr, 'parley_relay_sessions_open', lambda x: x == 0, '0')
    # A frame that is not msgpack: frames_rejected{bad_frame}.
    bad = Raw(t.addr, label='bad')
    bad.send_bytes(struct.pack('>I', 3) + b'\xc1\xc1\xc1')
    bad.expect_error('bad_frame')
    wait_value(maddr, 'parley_frames_rejected_total{reason="bad_frame"}', lambda x: x == 1, '1')
    big = Raw(t.addr, label='big')
    big.send_bytes(struct.pack('>I', 64 * 1024 + 1))
    big.expect_error('too_big')
    wait_value(maddr, 'parley_frames_rejected_total{reason="too_big"}', lambda x: x == 1, '1')
    for p in (alice, bob):
        p.quit()
    ca.close()
    cb.close()
    wait_value(maddr, 'parley_users_online', lambda x: x == 0, '0')
    t.stop()


def test_metrics_refused_by_limit():
    t = Tracker(extra_args=('--metrics', '127.0.0.1:0', '--max-conns-per-addr', '1'))
    m, _ = t.proc.wait_stderr(r'metrics on (127\.0\.0\.1:\d+)', timeout=15)
    a = Raw(t.addr, label='first')
    b = Raw(t.addr, label='second')
    b.expect_error('limit')
    wait_value(m.group(1), 'parley_connections_refused_total{reason="max_conns_per_addr"}',
               lambda x: x == 1, '1')
    a.close()
    t.stop()


def test_metrics_other_requests():
    t, maddr = metrics_tracker()
    for path in ('/', '/metricsx', '/../etc/passwd'):
        code, _, _ = curl(maddr, path)
        if code != 404:
            fail('GET %s: status %d, want 404' % (path, code))
    r = subprocess.run(['curl', '-sS', '-o', '/dev/null', '-w', '%{http_code}', '-X', 'POST',
                        '--max-time', '10', 'http://%s/metrics' % maddr],
                       stdout=subprocess.PIPE, timeout=20)
    if r.stdout != b'405':
        fail('POST /metrics: status %r, want 405' % r.stdout)
    host, port = maddr.rsplit(':', 1)

    def raw(data, wait_close=10):
        s = socket.create_connection((host, int(port)), timeout=wait_close)
        try:
            s.sendall(data)
        except OSError:
            pass
        got = b''
        start = time.monotonic()
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        except ConnectionResetError:
            pass
        except socket.timeout:
            fail('the metrics responder kept a connection open for %ss' % wait_close)
        s.close()
        return got, time.monotonic() - start
    got, _ = raw(b'GET /metrics HTTP/1.1\r\nX-Junk: ' + b'a' * 8000 + b'\r\n\r\n')
    if not got.startswith(b'HTTP/1.1 431 '):
        fail('an 8 kB request head: %r, want 431' % got[:80])
    got, _ = raw(b'nonsense\r\n\r\n')
    if not got.startswith(b'HTTP/1.1 400 '):
        fail('a request line without a method and version: %r' % got[:80])
    got, took = raw(b'GET /metr', wait_close=15)   # never finished: closed when idle
    if got or took < 3:
        fail('an idle half request got %r after %.1fs (want closed, silently, after ~5s)'
             % (got, took))
    # Still serving, and the tracker itself still is.
    scrape(maddr)
    alice = Peer('alice', t.addr)
    alice.registered()
    alice.quit()
    t.stop()


def test_metrics_flag_checked():
    import os
    r = subprocess.run([os.path.join(BUILD, 'parley-tracker'), '--metrics', 'localhost'],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
    if r.returncode != 2 or b'--metrics' not in r.stderr:
        fail('--metrics localhost: status %d, %r' % (r.returncode, r.stderr))
    busy = socket.socket()
    busy.bind(('127.0.0.1', 0))
    busy.listen()
    port = busy.getsockname()[1]
    d = tempdir()
    r = subprocess.run([os.path.join(BUILD, 'parley-tracker'), '--listen', '127.0.0.1:0', '--db',
                        os.path.join(d, 't.db'), '--metrics', '127.0.0.1:%d' % port],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=15)
    busy.close()
    err = r.stderr.decode(errors='replace')
    if r.returncode != 1 or 'cannot serve metrics on 127.0.0.1:%d' % port not in err:
        fail('--metrics on a busy port: status %d\n%s' % (r.returncode, err))
    if any(m in err for m in SANITIZER_MARKS):
        fail('sanitizer output:\n' + err)


if __name__ == '__main__':
    runner.main(globals())

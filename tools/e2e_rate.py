#!/usr/bin/python3
"""e2e_rate: chat message rate over a direct loopback link, for comparing
builds (what end-to-end encryption costs).  alice sends N one-line
messages to bob, who runs --echo; the clock stops when alice has seen all N
echoes (so each message crossed the link twice, plus two acks).

    tools/e2e_rate.py [--build DIR]... [-n 20000] [--runs 3]

Prints, per build, the best of --runs: messages per second (round trips)
and payload throughput.  Standard library only."""
import argparse
import os
import re
import subprocess
import tempfile
import threading
import time


def run_once(build, n, text):
    d = tempfile.mkdtemp(prefix='e2e-rate-')
    trk = subprocess.Popen([os.path.join(build, 'parley-tracker'), '--listen', '127.0.0.1:0', '--db',
                            os.path.join(d, 't.db')], stderr=subprocess.PIPE, text=True)
    addr = None
    for line in trk.stderr:
        m = re.search(r'listening on (\S+)', line)
        if m:
            addr = m.group(1)
            break
    threading.Thread(target=lambda: trk.stderr.read(), daemon=True).start()

    def peer(name, *extra):
        return subprocess.Popen([os.path.join(build, 'parley'), '--user', name, '--tracker', addr,
                                 '--home', os.path.join(d, name), '--ui', 'line'] + list(extra),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, bufsize=1)
    bob = peer('bob', '--echo')
    alice = peer('alice')
    for p, who in ((bob, 'bob'), (alice, 'alice')):
        for line in p.stdout:
            if line.startswith('registered'):
                break
    # bob's output must be drained, or his stdout pipe fills and he stalls.
    threading.Thread(target=lambda: bob.stdout.read(), daemon=True).start()
    alice.stdin.write('/dial bob\n')
    for line in alice.stdout:
        if line.startswith('connected bob'):
            break
    got = threading.Event()

    def count():
        k = 0
        for line in alice.stdout:
            if line.startswith('msg bob: '):
                k += 1
                if k == n:
                    got.set()
                    return
    threading.Thread(target=count, daemon=True).start()
    payload = ''.join('%s %d\n' % (text, i) for i in range(n))
    t0 = time.monotonic()
    alice.stdin.write(payload)
    alice.stdin.flush()
    ok = got.wait(120)
    dt = time.monotonic() - t0
    for p in (alice, bob):
        try:
            p.stdin.write('/quit\n')
            p.stdin.flush()
        except OSError:
            pass
    for p in (alice, bob):
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
    trk.terminate()
    trk.wait(10)
    if not ok:
        raise SystemExit('%s: only part of the %d echoes arrived' % (build, n))
    return dt


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--build', action='append')
    ap.add_argument('-n', type=int, default=20000)
    ap.add_argument('--runs', type=int, default=3)
    ap.add_argument('--size', type=int, default=40, help='bytes of text per message')
    a = ap.parse_args()
    text = 'x' * max(1, a.size - 6)
    for b in a.build or ['build']:
        best = min(run_once(b, a.n, text) for _ in range(a.runs))
        print('%-24s %6d msgs in %6.3f s: %8.0f round trips/s, %6.2f MB/s of text each way'
              % (b, a.n, best, a.n / best, a.n * a.size / best / 1e6))


if __name__ == '__main__':
    main()

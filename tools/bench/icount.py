#!/usr/bin/python3
"""icount.py: user-space instructions per request, tracker against
redis-server, counted by valgrind --tool=callgrind (`make bench-icount`).
With --side loadgen it counts the load generator instead (the servers run
natively): what the client pays per request, so a change to it can show
it does not become the bottleneck of figure 1.

Instruction counts do not depend on what else the machine is doing, so
this is the profile that explains figure 1 of `make bench` on a shared,
noisy machine.  For each pair (lookup vs GET, durable registration vs SET)
each server runs twice under callgrind, once with a small and once with a
large number of requests after the same setup, and the difference divided
by the difference in requests is the cost of one request: start-up, the
preload and the load generator's own registrations cancel out.  The kernel
is not counted (callgrind sees user space only): both servers make the
same system calls per request except where the table says otherwise.

    tools/bench/icount.py --build build [--top 12] [--side tracker|loadgen]

Prints one table (Markdown) and, per parley operation, the functions with
the most inclusive instructions per request.
"""
import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# (label, proto, op, small, large): requests per run.  Registrations cost
# ~50x a lookup under valgrind, so they run fewer.
PAIRS = [
    (('lookup', 'parley', 'lookup', 2000, 12000), ('redis GET', 'resp', 'get', 2000, 12000)),
    (('durable registration', 'parley', 'register', 200, 1200),
     ('redis SET', 'resp', 'set', 2000, 12000)),
]


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            sys.exit(f'icount: server exited with status {proc.returncode} before listening')
        try:
            with socket.create_connection(('127.0.0.1', port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    sys.exit(f'icount: server did not listen on port {port} within {timeout} s')


def run_once(a, proto, op, count, tmp, tag):
    """Starts the server (under callgrind unless --side loadgen), preloads,
    runs count requests (the load generator under callgrind with --side
    loadgen), stops the server; returns (total instructions of the counted
    process, its callgrind output file)."""
    port = free_port()
    d = os.path.join(tmp, tag)
    os.makedirs(d, exist_ok=True)
    out = os.path.join(d, 'callgrind.out')
    if proto == 'parley':
        server = [os.path.join(a.build, 'parley-tracker'), '--listen', f'127.0.0.1:{port}',
                  '--db', os.path.join(d, 'tracker.db'), '--log-level', 'warn',
                  '--rate-limit', '0', '--max-conns-per-addr', '0', '--max-conns', '0']
    else:
        server = [shutil.which('redis-server'), '--port', str(port), '--bind', '127.0.0.1',
                  '--save', '', '--appendonly', 'no', '--dir', d, '--logfile', os.path.join(d, 'redis.log')]
    grind = ['valgrind', '--tool=callgrind', f'--callgrind-out-file={out}']
    argv = server if a.side == 'loadgen' else grind + server
    with open(os.path.join(d, 'valgrind.log'), 'w') as log:
        p = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)
    try:
        wait_port(port, p)
        lg = [os.path.join(a.build, 'loadgen'), '--target', f'127.0.0.1:{port}', '--proto', proto]
        pre = ['--op', 'none', '--preload', '1000', '--names', 'u']
        if proto == 'resp':
            pre += ['--value-size', '100']
        subprocess.run(lg + pre, check=True, capture_output=True, timeout=600)
        args = ['--op', op, '--conns', '50', '--warmup', '0', '--duration', '600', '--count', str(count),
                '--names', 'u', '--name-count', '1000', '--self', f'{tag}-']
        if op == 'set':
            args += ['--value-size', '100']
        if a.side == 'loadgen':
            lg = grind + lg
        r = subprocess.run(lg + args, capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            sys.exit(f'icount: loadgen failed: {r.stderr.strip()}')
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    total = None
    with open(out) as f:
        for line in f:
            if line.startswith('summary:') or line.startswith('totals:'):
                total = int(line.split()[1])
    if total is None:
        sys.exit(f'icount: no totals in {out}')
    return total, out


def inclusive(out):
    """{function: inclusive instructions} from callgrind_annotate."""
    r = subprocess.run(['callgrind_annotate', '--inclusive=yes', '--threshold=100', out],
                       capture_output=True, text=True)
    funcs = {}
    for line in r.stdout.splitlines():
        m = re.match(r'\s*([\d,]+)\s+\([\s\d.]+%\)\s+(\S+)', line)
        if m and ':' in m.group(2):
            name = m.group(2).split(':', 1)[1]
            if name.startswith(('0x', '(')) or name in funcs:
                continue
            funcs[name] = int(m.group(1).replace(',', ''))
    return funcs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--build', default='build', help='build directory with parley-tracker and loadgen')
    ap.add_argument('--top', type=int, default=12, help='functions listed per parley operation')
    ap.add_argument('--side', choices=('tracker', 'loadgen'), default='tracker',
                    help='the process counted: the servers (default) or the load generator')
    a = ap.parse_args()
    a.build = os.path.join(ROOT, a.build) if not os.path.isabs(a.build) else a.build
    for need in ('valgrind', 'callgrind_annotate', 'redis-server'):
        if not shutil.which(need):
            sys.exit(f'icount: {need} is missing (make deps-bench installs redis-server; '
                     f'valgrind comes with make deps)')
    tmp = tempfile.mkdtemp(prefix='icount-', dir=a.build)
    rows, tops = [], []
    t0 = time.monotonic()
    for pair in PAIRS:
        per = []
        for label, proto, op, small, large in pair:
            print(f'icount: {label}: {small} and {large} requests under callgrind ...', file=sys.stderr)
            t1, o1 = run_once(a, proto, op, small, tmp, f'{op}-s')
            t2, o2 = run_once(a, proto, op, large, tmp, f'{op}-l')
            per.append((t2 - t1) / (large - small))
            if proto == 'parley':
                f1, f2 = inclusive(o1), inclusive(o2)
                diff = {k: (f2[k] - f1.get(k, 0)) / (large - small) for k in f2}
                top = sorted(((v, k) for k, v in diff.items() if v > 0), reverse=True)
                # below main and the loop itself say nothing: start at the dispatcher
                top = [(v, k) for v, k in top if k not in ('(below main)', 'main', 'uv_run',
                       '__libc_start_main@@GLIBC_2.34', '__libc_start_call_main')][:a.top]
                tops.append((label, top))
        rows.append((pair[0][0], per[0], pair[1][0], per[1]))
    who = 'the load generator' if a.side == 'loadgen' else 'the server'
    print(f'Instructions per request in user space of {who} (valgrind --tool=callgrind; kernel not '
          f'counted), 50 connections, one request in flight each; {time.monotonic() - t0:.0f} s.\n')
    print('| parley | instructions/request | reference | instructions/request | parley/reference |')
    print('|---|---|---|---|---|')
    for pl, pv, rl, rv in rows:
        print(f'| {pl} | {pv:,.0f} | {rl} | {rv:,.0f} | {pv / rv:.2f}x |')
    for label, top in tops:
        print(f'\nparley {label}: inclusive instructions per request, top {len(top)}:\n')
        print('| function | instructions/request |')
        print('|---|---|')
        for v, k in top:
            print(f'| `{k}` | {v:,.0f} |')
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()

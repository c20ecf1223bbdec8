#!/usr/bin/python3
"""chatcost.py: what one chat message costs each peer, in instructions
(valgrind --tool=callgrind, stable on a noisy machine) or system calls
(strace -c).  Figure 5's companion; not part of `make bench`.

It starts a tracker and two peers (`echo` with --echo, its events to a
file; `talk`, driven through its stdin), dials, sends N 100-byte lines one
at a time (each waits for its echo; --window W keeps W in flight, as
figure 5's messages/s does), quits both, and prints each peer's totals.  Run it with two N and take the difference over the extra
messages, so start-up and the handshake cancel out:

    tools/bench/chatcost.py --build build --count 2000 --tool callgrind
    tools/bench/chatcost.py --build build --count 6000 --tool callgrind
    # instructions per message = (Ir at 6000 - Ir at 2000) / 4000, per peer
    tools/bench/chatcost.py --build build --count 2000 --tool strace
    # history.db's WAL frames (page writes to history.db-wal) and fsyncs:
    tools/bench/chatcost.py --build build --count 1000 --tool wal
    # CPU time of each peer (its threads included), pinned as figure 5 is:
    taskset -c 1 tools/bench/chatcost.py --build build --count 60000 --window 32 \
        --ui json --tool none --pin 0
    # where it goes: --tool perf --keep, then perf report -i DIR/perf.talk

--ui json drives the talking peer in JSON mode (as figure 5 does);
--no-history runs both peers without history.db.
"""
import argparse
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--build', default='build')
    ap.add_argument('--count', type=int, default=2000)
    ap.add_argument('--tool', choices=('callgrind', 'strace', 'wal', 'perf', 'none'),
                    default='callgrind')
    ap.add_argument('--pin', metavar='CPU', help='run both peers under taskset -c CPU (as '
                    'figure 5 does; run this script itself on another CPU)')
    ap.add_argument('--window', type=int, default=1, help='lines in flight (default 1)')
    ap.add_argument('--no-history', action='store_true', help="both peers' --no-history")
    ap.add_argument('--ui', choices=('line', 'json'), default='line', help="the talking peer's --ui")
    ap.add_argument('--keep', action='store_true', help='keep the work directory (callgrind '
                    'profiles cg.talk and cg.echo, for callgrind_annotate) and print its path')
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix='chatcost-')
    procs = []

    def wrap(name):
        if a.tool == 'callgrind':
            return ['valgrind', '--tool=callgrind', f'--callgrind-out-file={tmp}/cg.{name}']
        if a.tool == 'strace':
            return ['strace', '-f', '-c', '-o', f'{tmp}/st.{name}']
        if a.tool == 'perf':
            return ['perf', 'record', '-q', '-g', '-o', f'{tmp}/perf.{name}']
        if a.tool == 'wal':
            return ['strace', '-f', '-y', '-e', 'trace=pwrite64,fdatasync', '-e', 'signal=none',
                    '-o', f'{tmp}/wal.{name}']
        return []

    buf = {'talk': b''}

    def talk_until(p, want, timeout=120):
        end = time.time() + timeout
        while time.time() < end:
            while b'\n' in buf['talk']:
                line, buf['talk'] = buf['talk'].split(b'\n', 1)
                if want in line:
                    return
            r, _, _ = select.select([p.stdout], [], [], 1)
            if r:
                d = os.read(p.stdout.fileno(), 65536)
                if not d:
                    break
                buf['talk'] += d
        sys.exit(f'chatcost: the talking peer did not print {want!r}; logs in {tmp}')

    try:
        port = free_port()
        trk = subprocess.Popen([os.path.join(a.build, 'parley-tracker'), '--listen', f'127.0.0.1:{port}',
                                '--db', f'{tmp}/tracker.db', '--log-level', 'warn'],
                               stderr=open(f'{tmp}/tracker.log', 'w'))
        procs.append(trk)
        time.sleep(0.5)
        peers = {}
        for name, extra, ui in (('echo', ['--echo'], 'line'), ('talk', [], a.ui)):
            os.makedirs(f'{tmp}/{name}')
            out = subprocess.PIPE if name == 'talk' else open(f'{tmp}/echo.out', 'wb')
            pin = ['taskset', '-c', a.pin] if a.pin else []
            p = subprocess.Popen(pin + wrap(name) + [os.path.join(a.build, 'parley'), '--user', name,
                                 '--tracker', f'127.0.0.1:{port}', '--listen', '127.0.0.1:0',
                                 '--home', f'{tmp}/{name}', '--ui', ui, '--log-level', 'warn'] + extra
                                 + (['--no-history'] if a.no_history else []),
                                 stdin=subprocess.PIPE, stdout=out, stderr=open(f'{tmp}/{name}.err', 'w'))
            procs.append(p)
            peers[name] = p
            if name == 'talk':
                talk_until(p, b'registered')
            else:
                end = time.time() + 120
                while b'registered' not in open(f'{tmp}/echo.out', 'rb').read():
                    if time.time() > end:
                        sys.exit(f'chatcost: the echo peer did not register; logs in {tmp}')
                    time.sleep(0.05)
        talk, echo = peers['talk'], peers['echo']
        talk.stdin.write(b'/dial echo\n')
        talk.stdin.flush()
        talk_until(talk, b'connected')
        want = b'msg echo: ' if a.ui == 'line' else b'"type":"message"'
        def cpu(p):  # utime, stime of the whole process (its threads too), in ticks
            f = open(f'/proc/{p.pid}/stat').read().rsplit(')', 1)[1].split()
            return int(f[11]), int(f[12])
        c0 = {n: cpu(p) for n, p in peers.items()}
        t0 = time.time()
        for i in range(a.count + a.window - 1):
            if i < a.count:
                talk.stdin.write(b'x' * 99 + b'\n')
                talk.stdin.flush()
            if i >= a.window - 1:
                talk_until(talk, want)
        secs = time.time() - t0
        c1 = {n: cpu(p) for n, p in peers.items()}
        time.sleep(0.5)  # the last acks
        for p in (talk, echo):
            p.stdin.write(b'/quit\n')
            p.stdin.flush()
        for p in (talk, echo):
            p.communicate(timeout=120)
        trk.terminate()
        trk.wait()
        print(f'count={a.count} window={a.window} ui={a.ui} tool={a.tool} seconds={secs:.2f}')
        hz = os.sysconf('SC_CLK_TCK')
        for n in ('talk', 'echo'):
            print(f'{n} cpu_user_s={(c1[n][0] - c0[n][0]) / hz:.2f} '
                  f'cpu_system_s={(c1[n][1] - c0[n][1]) / hz:.2f} (the timed messages; '
                  f'--tool none only)')
        for name in ('talk', 'echo'):
            if a.tool == 'callgrind':
                txt = open(f'{tmp}/cg.{name}').read()
                m = re.search(r'^(?:summary|totals): (\d+)', txt, re.M)
                print(f'{name} Ir={m.group(1)}')
            elif a.tool == 'strace':
                print(f'{name}:\n' + open(f'{tmp}/st.{name}').read())
            elif a.tool == 'perf':
                print(f'{name}: perf report -i {tmp}/perf.{name} (with --keep)')
            elif a.tool == 'wal':
                # A frame is a page-sized write to the -wal (its 24-byte
                # header is a write of its own); the fsyncs are the sync
                # thread's.
                frames = syncs = pages = 0
                for line in open(f'{tmp}/wal.{name}'):
                    m = re.search(r'^(?:\d+ +)?(pwrite64|fdatasync)\(\d+<([^>]*)>'
                                  r'(?:.*, (\d+), \d+\))?', line)
                    if not m:
                        continue
                    big = m.group(3) and int(m.group(3)) >= 512
                    if m.group(2).endswith('history.db-wal'):
                        frames += m.group(1) == 'pwrite64' and bool(big)
                        syncs += m.group(1) == 'fdatasync'
                    elif m.group(2).endswith('history.db'):
                        pages += m.group(1) == 'pwrite64' and bool(big)
                print(f'{name} wal_frames={frames} wal_fdatasyncs={syncs} db_pages={pages}')
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    if a.keep:
        print(f'kept {tmp}')
    else:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()

#!/usr/bin/python3
"""dial.py: the connectivity matrix: for pairs of router kinds, which path a
/dial ends on, how often it connects and how long it takes, measured in a
tools/netlab NAT lab with the real tracker and peers (docs/PROTOCOL.md,
"Reaching a peer").  Needs root.

    tools/bench/dial.py [--build build] [--runs 20] [--pairs none:pp-reject,...]

A pair X:Y is a lab with host a behind router r1 of kind X and host b
behind r2 of kind Y (tools/netlab --r1 X --r2 Y); kind `none` is the public
host pub instead.  For each pair and each direction it dials RUNS times,
each dial a fresh conversation (/dial, wait for the `connected` event on
both sides, /bye), with --ui json peers, whose `connected` event carries
the path (direct, relay) and how (dialed, reverse, punched, relay).  It
prints one Markdown row per pair and direction, ready for the README: the
paths reached with their counts, dials that connected, and the median and
worst time from writing /dial to reading the dialer's `connected`; where
neither router is symmetric, a dial that reached the relay waits up to 4 s
for the upgrade (`connected ... direct` again), and the last two columns
count the dials that ended direct and the median time to that.
"""
import argparse
import collections
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

KINDS = ('none', 'pp-reject', 'pp-drop', 'sym-reject', 'sym-drop')
# every pair once: the public host with each router kind, then each two
# router kinds (both directions are dialed anyway)
PAIRS = tuple('%s:%s' % (x, y) for i, x in enumerate(KINDS) for y in KINDS[max(i, 1):])
SEQ = {'punched': 'p', 'dialed': 'd', 'reverse': 'r', 'relay': 'R'}
SEQ_KEY = 'd dialed, r reverse, p punched, R relay, u relay then upgraded to direct, x failed'
DIAL_TIMEOUT = 15  # s: a dial not connected by then counts as failed
UPGRADE_WAIT = 4   # s: a relayed dial between port-preserving NATs waits this long for the upgrade


def parse_pairs(text):
    pairs = []
    for p in text.split(','):
        x, _, y = p.partition(':')
        if x not in KINDS or y not in KINDS or y == 'none':
            raise SystemExit('dial.py: bad pair %r (KIND:KIND, KIND one of %s; none only '
                             'first)' % (p, ' '.join(KINDS)))
        pairs.append((x, y))
    return pairs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--build', default='build', help='build directory (default build)')
    ap.add_argument('--runs', type=int, default=20, help='dials per pair and direction '
                    '(default 20)')
    ap.add_argument('--pairs', default=','.join(PAIRS),
                    help='comma-separated KIND:KIND pairs (default: the whole matrix)')
    ap.add_argument('--logs', action='store_true',
                    help='run the peers with --log-level debug and print both peers\' log '
                    'lines of every dial that ended relayed or failed where another dial of '
                    'the same direction got a direct link')
    args = ap.parse_args()
    pairs = parse_pairs(args.pairs)
    os.environ['PARLEY_BUILD'] = os.path.abspath(os.path.join(ROOT, args.build))
    sys.path.insert(0, os.path.join(ROOT, 'tests', 'integration'))
    import harness
    from procs import fail

    rows = []

    def event(p, types, timeout):
        """The next unconsumed JSON event of p whose type is in types."""
        m = p.expect(r'^\{"type":"(%s)"' % '|'.join(types), timeout)
        return json.loads(m.string)

    def quit_json(p):
        p.send('/quit')
        event(p, ('bye',), 10)
        rc = p.proc.wait_exit(10)
        p.proc.wait_output_done()
        p.proc.assert_clean()
        if rc != 0:
            fail('%s exited with %s after /quit' % (p.proc.label, rc))

    def log_lines(p, start):
        with p.proc.cond:
            return list(p.proc.err_lines[start:])

    def run_pair(r1, r2):
        # none:X is host pub and host a behind r1 of kind X
        if r1 == 'none':
            lab, hosts, kinds = harness.NetLab(r1=r2), ('pub', 'a'), ('none', r2)
        else:
            lab, hosts, kinds = harness.NetLab(r1=r1, r2=r2), ('a', 'b'), (r1, r2)
        kinds = dict(zip(hosts, kinds))
        t = lab.tracker()
        names = ('u' + hosts[0], 'u' + hosts[1])
        peers = []
        for n, h in zip(names, hosts):
            p = lab.peer(n, h, t, extra_args=('--ui', 'json') +
                         (('--log-level', 'debug') if args.logs else ()))
            event(p, ('registered',), 15)
            peers.append(p)
        for x, y in ((peers[0], peers[1]), (peers[1], peers[0])):
            times, paths, failures, seq, logs = [], collections.Counter(), [], '', []
            ended_direct, to_direct = 0, []
            # Only where a direct path can exist: a symmetric router leaves
            # the upgrade nothing to find (and each wait would cost seconds).
            upgradable = 'sym' not in kinds[x.name[1:]] + kinds[y.name[1:]]
            for _ in range(args.runs):
                marks = (len(log_lines(x, 0)), len(log_lines(y, 0)))
                start = time.monotonic()
                x.send('/dial %s' % y.name)
                ev = None
                try:
                    while True:
                        ev = event(x, ('connected', 'error'), DIAL_TIMEOUT)
                        if ev['type'] == 'error' or ev.get('name') == y.name:
                            break
                except harness.TestFailure:
                    ev = None
                if ev is None or ev['type'] == 'error':
                    failures.append('no connected within %d s' % DIAL_TIMEOUT if ev is None
                                    else 'error %s: %s' % (ev.get('code'), ev.get('text')))
                    x.send('/bye')
                    seq += 'x'
                    logs.append((log_lines(x, marks[0]), log_lines(y, marks[1])))
                    continue
                times.append((time.monotonic() - start) * 1000)
                paths['%s (%s)' % (ev.get('path'), ev.get('how'))] += 1
                seq += SEQ.get(ev.get('how'), '?')
                while event(y, ('connected',), DIAL_TIMEOUT).get('name') != x.name:
                    pass
                if ev.get('path') == 'direct':
                    ended_direct += 1
                    to_direct.append(times[-1])
                elif upgradable:  # the relayed chat's upgrade: connected ... direct again
                    try:
                        while True:
                            up = event(x, ('connected',), UPGRADE_WAIT)
                            if up.get('name') == y.name and up.get('path') == 'direct':
                                break
                        ended_direct += 1
                        to_direct.append((time.monotonic() - start) * 1000)
                        seq = seq[:-1] + 'u'
                        while event(y, ('connected',), DIAL_TIMEOUT).get('name') != x.name:
                            pass
                    except harness.TestFailure:
                        pass
                x.send('/bye')
                while event(y, ('closed',), 10).get('name') != x.name:
                    pass
                logs.append((log_lines(x, marks[0]), log_lines(y, marks[1])))
            what = '%s (%s) -> %s (%s)' % (x.name[1:], kinds[x.name[1:]],
                                           y.name[1:], kinds[y.name[1:]])
            row = (what, paths, len(times), args.runs,
                   statistics.median(times) if times else None,
                   max(times) if times else None, failures, ended_direct,
                   statistics.median(to_direct) if to_direct else None)
            rows.append(row)
            print('dial.py: %s' % fmt_row(row), file=sys.stderr, flush=True)
            print('dial.py:   dials in order: %s (%s)' % (seq, SEQ_KEY), file=sys.stderr)
            for f in sorted(set(failures)):
                print('dial.py:   failed: %s' % f, file=sys.stderr, flush=True)
            direct = any(c in 'pdr' for c in seq)
            for i, (c, (xl, yl)) in enumerate(zip(seq, logs if args.logs else ())):
                if direct and c in 'Rux':
                    print('dial.py:   dial %d (%s), %s:' % (i + 1, c, x.name), file=sys.stderr)
                    print(''.join('      %s\n' % l for l in xl), end='', file=sys.stderr)
                    print('dial.py:   ... and %s:' % y.name, file=sys.stderr)
                    print(''.join('      %s\n' % l for l in yl), end='', file=sys.stderr)
        for p in peers:
            quit_json(p)
        t.stop()

    status = 0
    began, load = time.time(), os.getloadavg()
    for r1, r2 in pairs:
        if harness.run_test(lambda: run_pair(r1, r2)) != 0:
            print('dial.py: pair %s:%s failed' % (r1, r2), file=sys.stderr)
            status = 1
        harness._cleanups.clear()
        harness._procs.clear()
    print('| dial | path (how): dials | connected | median ms | worst ms | ended direct | median ms to direct |')
    print('|---|---|---|---|---|---|---|')
    for row in rows:
        print(fmt_row(row))
    cmd = 'tools/bench/dial.py --build %s --runs %d' % (args.build, args.runs)
    if args.pairs != ','.join(PAIRS):
        cmd += ' --pairs %s' % args.pairs
    print('\n%d dials per pair and direction, default --relay-after 1000; measured with `%s`, '
          '%s, %d s, load average at start %s'
          % (args.runs, cmd, time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(began)),
             time.time() - began, ' '.join('%.2f' % l for l in load)))
    return status


def fmt_row(row):
    what, paths, ok, runs, med, worst, _, ended, to_direct = row
    p = ', '.join('%s: %d' % (k, n) for k, n in sorted(paths.items(), key=lambda kv: -kv[1]))
    ms = lambda v: '-' if v is None else '%.1f' % v
    return '| %s | %s | %d/%d | %s | %s | %d/%d | %s |' % (what, p or '-', ok, runs, ms(med),
                                                         ms(worst), ended, runs, ms(to_direct))


if __name__ == '__main__':
    sys.exit(main())

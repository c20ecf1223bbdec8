#!/usr/bin/python3
"""dial.py: how long a /dial takes to become a chat link, per path of the
connection ladder (docs/PROTOCOL.md, "Reaching a peer"), measured in a
tools/netlab NAT lab with the real tracker and peers.  Needs root.

    tools/bench/dial.py [--build build] [--runs 20]

For each case it dials RUNS times (each dial a fresh conversation: /dial,
wait for `connected NAME PATH`, /bye) and prints the median and the worst
time from writing /dial to reading the connection event, as a Markdown
table ready for the README:

    direct    a (behind r1) dials pub (public)
    reverse   pub dials a: the tracker asks a to dial back
    relay     a dials b, both behind NAT (routers REJECT inbound)
    silent    a dials b, routers DROP inbound (--drop-inbound)
"""
import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--build', default='build', help='build directory (default build)')
    ap.add_argument('--runs', type=int, default=20, help='dials per case (default 20)')
    args = ap.parse_args()
    os.environ['PARLEY_BUILD'] = os.path.abspath(os.path.join(ROOT, args.build))
    sys.path.insert(0, os.path.join(ROOT, 'tests', 'integration'))
    import harness

    cases = [('direct', False, 'a', 'pub', 'direct', 'NATed a dials public pub'),
             ('reverse', False, 'pub', 'a', 'direct', 'public pub dials NATed a (reverse)'),
             ('relay', False, 'a', 'b', 'relay', 'NATed a dials NATed b (routers reject)'),
             ('silent drop', True, 'a', 'b', 'relay', 'NATed a dials NATed b (routers drop)')]
    rows = []

    def run_case(case):
        name, drop, src, dst, path, what = case
        lab = harness.NetLab(drop_inbound=drop)
        t = lab.tracker()
        names = {src: 'u' + src, dst: 'u' + dst}
        dialer = lab.peer(names[src], src, t)
        dialer.registered()
        other = lab.peer(names[dst], dst, t)
        other.registered()
        times = []
        for _ in range(args.runs):
            start = time.monotonic()
            dialer.send('/dial %s' % names[dst])
            dialer.expect(r'^connected %s %s$' % (names[dst], path), 30)
            times.append((time.monotonic() - start) * 1000)
            other.expect(r'^connected %s %s$' % (names[src], path), 30)
            dialer.send('/bye')
            other.expect(r'^closed %s: bye$' % names[src], 10)
        rows.append((name, what, statistics.median(times), max(times)))
        dialer.quit()
        other.quit()
        t.stop()

    for case in cases:
        if harness.run_test(lambda: run_case(case)) != 0:
            print('dial.py: case %s failed' % case[0], file=sys.stderr)
            return 1
        harness._cleanups.clear()
        harness._procs.clear()
    print('| path | case | median ms | worst ms |')
    print('|---|---|---|---|')
    for name, what, med, worst in rows:
        print('| %s | %s | %.1f | %.1f |' % (name, what, med, worst))
    print('\n%d dials per case, default --relay-after 1000; measured with `%s`'
          % (args.runs, 'tools/bench/dial.py --build %s --runs %d' % (args.build, args.runs)))
    return 0


if __name__ == '__main__':
    sys.exit(main())

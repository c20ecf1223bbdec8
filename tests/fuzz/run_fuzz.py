#!/usr/bin/python3
"""run_fuzz: runs each libFuzzer harness of tests/fuzz/ for a while and
prints one summary line per harness (`make fuzz` calls it).

    tests/fuzz/run_fuzz.py --bin-dir build/fuzz [--seconds 60] [--only tracker peer]

Each harness BIN_DIR/fuzz_NAME runs, one after another, with its growing
corpus in BIN_DIR/corpus/NAME (new inputs go there) and the committed seeds
of tests/fuzz/corpus/NAME read as well.  Crashes, leaks and timeouts are
written to BIN_DIR/crashes/NAME-*; the full output of each run is kept in
BIN_DIR/logs/NAME.log.  Exits 1 when any harness found something.
To replay a crash: BIN_DIR/fuzz_NAME BIN_DIR/crashes/NAME-crash-...
"""
import argparse
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NAMES = ['frame', 'msg', 'tracker', 'peer']


def run(name, args):
    binary = os.path.join(args.bin_dir, 'fuzz_' + name)
    corpus = os.path.join(args.bin_dir, 'corpus', name)
    seeds = os.path.join(HERE, 'corpus', name)
    crashes = os.path.join(args.bin_dir, 'crashes')
    logs = os.path.join(args.bin_dir, 'logs')
    for d in (corpus, crashes, logs):
        os.makedirs(d, exist_ok=True)
    log = os.path.join(logs, name + '.log')
    argv = [binary, '-max_total_time=%d' % args.seconds, '-max_len=%d' % args.max_len,
            '-timeout=25', '-rss_limit_mb=2048', '-print_final_stats=1',
            '-artifact_prefix=%s/%s-' % (crashes, name), corpus]
    if os.path.isdir(seeds):
        argv.append(seeds)
    env = dict(os.environ)
    env.setdefault('ASAN_OPTIONS', 'detect_leaks=1')
    env.setdefault('UBSAN_OPTIONS', 'print_stacktrace=1:halt_on_error=1')
    start = time.monotonic()
    with open(log, 'wb') as f:
        rc = subprocess.call(argv, stdout=f, stderr=subprocess.STDOUT, env=env)
    secs = time.monotonic() - start
    text = open(log, 'rb').read().decode('utf-8', 'replace')
    cov = [int(x) for x in re.findall(r'\bcov: (\d+)', text)]
    ft = [int(x) for x in re.findall(r'\bft: (\d+)', text)]
    execs = re.search(r'stat::number_of_executed_units:\s+(\d+)', text)
    eps = re.search(r'stat::average_exec_per_sec:\s+(\d+)', text)
    arts = re.findall(r'Test unit written to (\S+)', text)
    summary = {
        'name': name, 'rc': rc, 'secs': secs, 'cov': max(cov) if cov else 0,
        'ft': max(ft) if ft else 0, 'execs': int(execs.group(1)) if execs else 0,
        'eps': int(eps.group(1)) if eps else 0, 'artifacts': arts, 'log': log,
    }
    if rc != 0 and not arts:
        summary['artifacts'] = ['(exit status %d, see %s)' % (rc, log)]
    return summary


def main():
    ap = argparse.ArgumentParser(description='Run the parley fuzz harnesses.')
    ap.add_argument('--bin-dir', required=True)
    ap.add_argument('--seconds', type=int, default=60)
    ap.add_argument('--max-len', type=int, default=70000)
    ap.add_argument('--only', nargs='*', default=None, choices=NAMES)
    args = ap.parse_args()
    names = args.only or NAMES
    results = []
    for n in names:
        print('fuzz %s: running %d s ...' % (n, args.seconds), flush=True)
        results.append(run(n, args))
        r = results[-1]
        print('fuzz %-8s %6.0fs %10d execs %7d exec/s  cov %5d  ft %6d  %s' % (
            r['name'], r['secs'], r['execs'], r['eps'], r['cov'], r['ft'],
            'CRASH ' + ' '.join(r['artifacts']) if r['artifacts'] else 'no crash'), flush=True)
    bad = [r for r in results if r['artifacts']]
    print('fuzz summary: %d harnesses, %d with findings%s' % (
        len(results), len(bad), ''.join('\n  %s: %s (log %s)' % (r['name'], ' '.join(r['artifacts']),
                                                               r['log']) for r in bad)))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())

#!/usr/bin/python3
"""run.py: the test runner behind `make test`.

For each build directory given with --build it runs every unit test binary in
BUILD/tests/unit/ (`BIN --list` names the tests, `BIN NAME` runs one) and
every test_* function of tests/integration/test_*.py, each in its own process
group with a timeout, in parallel.  It prints one line per test, the captured
output of the failures, and one summary line `N passed, N failed`.

    tests/run.py --build build --build build/asan [-j N] [FILTER...]

Integration tests exit with status 77 to report that they were skipped (for
example no IPv6 loopback); they are counted apart, never as passed.
Python standard library only.
"""
import argparse
import ast
import concurrent.futures
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INTEGRATION_DIR = os.path.join(ROOT, 'tests', 'integration')
UNIT_DIR = os.path.join(ROOT, 'tests', 'unit')
UNIT_TIMEOUT = 30
INTEGRATION_TIMEOUT = 120
SKIP_STATUS = 77

# Harmless for a build without sanitizers; they make a sanitized one fail
# loudly (non-zero, abort) instead of printing and carrying on.
SAN_ENV = {
    'ASAN_OPTIONS': 'detect_leaks=1:abort_on_error=1:halt_on_error=1',
    'UBSAN_OPTIONS': 'halt_on_error=1:print_stacktrace=1',
}


class Test:
    def __init__(self, build, kind, file, name, argv, timeout):
        self.build = build      # as given on the command line, for display
        self.kind = kind        # "unit" or "integration"
        self.file = file        # "test_frame"
        self.name = name
        self.argv = argv
        self.timeout = timeout

    @property
    def label(self):
        return '%s %s/%s %s' % (self.build, self.kind, self.file, self.name)


def unit_tests(build, errors):
    d = os.path.join(build, 'tests', 'unit')
    if not os.path.isdir(d):
        errors.append('%s: no unit test directory %s (build the unit tests first)' % (build, d))
        return []
    tests = []
    for f in sorted(os.listdir(d)):
        path = os.path.join(d, f)
        if not f.startswith('test_') or f.endswith('.o') or not os.access(path, os.X_OK):
            continue
        # A binary whose source is gone (a test file removed or renamed since
        # this tree was built) is stale: make no longer rebuilds it.
        if not os.path.exists(os.path.join(UNIT_DIR, f + '.c')):
            print('note: %s has no source %s.c; not run (stale)' % (path, f), flush=True)
            continue
        try:
            out = subprocess.run([path, '--list'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 env=dict(os.environ, **SAN_ENV), timeout=UNIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            errors.append('%s --list timed out' % path)
            continue
        if out.returncode != 0:
            errors.append('%s --list failed (status %d): %s' % (path, out.returncode,
                                                                 out.stdout.decode(errors='replace')))
            continue
        for name in out.stdout.decode(errors='replace').split():
            tests.append(Test(build, 'unit', f, name, [os.path.abspath(path), name], UNIT_TIMEOUT))
    return tests


def integration_tests(build, errors):
    tests = []
    if not os.path.isdir(INTEGRATION_DIR):
        return tests
    for f in sorted(os.listdir(INTEGRATION_DIR)):
        if not (f.startswith('test_') and f.endswith('.py')):
            continue
        path = os.path.join(INTEGRATION_DIR, f)
        try:
            with open(path, encoding='utf-8') as fh:
                tree = ast.parse(fh.read(), path)
        except SyntaxError as e:
            errors.append('%s: %s' % (path, e))
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith('test_'):
                tests.append(Test(build, 'integration', f[:-3], node.name,
                                  [sys.executable, path, node.name], INTEGRATION_TIMEOUT))
    return tests


def run_one(t):
    """Runs one test in its own process group; returns (status, seconds, output)
    with status "ok", "FAIL" or "skip"."""
    env = dict(os.environ, **SAN_ENV)
    env['PARLEY_BUILD'] = os.path.abspath(t.build)
    env['PYTHONDONTWRITEBYTECODE'] = '1'
    env['PYTHONUNBUFFERED'] = '1'
    start = time.monotonic()
    # Output goes to a file, not a pipe: a stray grandchild holding a pipe
    # open could otherwise keep us waiting past the timeout.
    with tempfile.TemporaryFile() as out:
        p = subprocess.Popen(t.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                             cwd=ROOT, env=env, start_new_session=True)
        timed_out = False
        try:
            rc = p.wait(timeout=t.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            rc = None
        # Whatever the test left behind in its group goes too.
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if rc is None:
            rc = p.wait()
        secs = time.monotonic() - start
        out.seek(0)
        text = out.read().decode('utf-8', errors='replace')
    if timed_out:
        return 'FAIL', secs, text + '\n[run.py] timed out after %d s; process group killed\n' % t.timeout
    if rc == 0:
        return 'ok', secs, text
    if rc == SKIP_STATUS and t.kind == 'integration':
        return 'skip', secs, text
    how = 'killed by signal %d' % -rc if rc < 0 else 'exit status %d' % rc
    return 'FAIL', secs, text + '\n[run.py] %s\n' % how


def main():
    ap = argparse.ArgumentParser(description='Run the parley unit and integration tests.')
    ap.add_argument('--build', action='append', required=True,
                    help='build directory holding parley-tracker, parley and tests/unit/ (repeatable)')
    ncpu = os.cpu_count() or 1
    ap.add_argument('-j', type=int, default=max(4, 2 * ncpu),
                    help='tests run at once (default: 2 x CPUs, at least 4)')
    ap.add_argument('filters', nargs='*', metavar='FILTER',
                    help='run only tests whose "BUILD KIND/FILE NAME" contains one of these')
    args = ap.parse_args()

    errors, tests = [], []
    for b in args.build:
        if not os.path.isdir(b):
            errors.append('%s: no such build directory (run make first)' % b)
            continue
        # Integration tests first: they are the slow ones, so they should not
        # be the tail of the run.
        tests += integration_tests(b, errors)
        tests += unit_tests(b, errors)
    if args.filters:
        tests = [t for t in tests if any(f in t.label for f in args.filters)]

    lock = threading.Lock()
    counts = {'ok': 0, 'FAIL': 0, 'skip': 0}
    skip_reasons = {}
    for e in errors:
        print('FAIL %s' % e, flush=True)
        counts['FAIL'] += 1

    def report(t, fut):
        try:
            status, secs, text = fut.result()
        except Exception as e:  # the runner itself broke: still a failure
            status, secs, text = 'FAIL', 0.0, 'run.py: %r\n' % e
        with lock:
            counts[status] += 1
            tag = {'ok': 'ok  ', 'FAIL': 'FAIL', 'skip': 'skip'}[status]
            line = '%s %s %.2fs' % (tag, t.label, secs)
            if status == 'skip':
                reason = [l for l in text.splitlines() if l.startswith('SKIP')]
                line += '  (%s)' % (reason[-1] if reason else 'skipped')
                why = reason[-1][5:].strip() if reason else 'no reason given'
                skip_reasons[why] = skip_reasons.get(why, 0) + 1
            print(line, flush=True)
            if status == 'FAIL':
                for l in text.rstrip('\n').splitlines():
                    print('    ' + l)
                sys.stdout.flush()

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.j)) as ex:
        futs = {ex.submit(run_one, t): t for t in tests}
        for fut in concurrent.futures.as_completed(futs):
            report(futs[fut], fut)

    summary = '%d passed, %d failed' % (counts['ok'], counts['FAIL'])
    if counts['skip']:
        summary += ', %d skipped' % counts['skip']
        # Skips are loud: each distinct reason once, right above the summary.
        for why, n in sorted(skip_reasons.items()):
            print('SKIPPED %d test%s: %s' % (n, '' if n == 1 else 's', why), flush=True)
    print(summary, flush=True)
    if counts['FAIL'] or counts['ok'] == 0:
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())

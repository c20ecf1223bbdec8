"""runner: how a test file runs.  A test file ends with
`if __name__ == '__main__': runner.main(globals())` and is run as
`python3 test_x.py test_name` (tests/run.py does this, each test in its own
process); run_test runs one test function, then every cleanup registered
with procs.on_cleanup whatever happened, and prints the output of every
process on failure.
"""
import os
import sys
import traceback

from procs import BUILD, SKIP_STATUS, Skip, _cleanups, _procs

def run_test(fn):
    """Runs one test function, cleans up everything it made, and returns the
    exit status (0 pass, 1 fail, 77 skip)."""
    status = 0
    try:
        fn()
        # Even processes the test did not stop must not have reported
        # memory errors or undefined behaviour.
        for p in list(_procs):
            p.assert_clean()
    except Skip as e:
        print('SKIP: %s' % e)
        status = SKIP_STATUS
    except BaseException:
        traceback.print_exc(file=sys.stdout)
        status = 1
    finally:
        for fn_ in reversed(list(_cleanups)):
            try:
                fn_()
            except Exception:
                traceback.print_exc(file=sys.stdout)
    if status == 1:
        for p in _procs:
            p.dump()
    sys.stdout.flush()
    return status


def main(namespace):
    names = sys.argv[1:]
    if not names:
        names = sorted(n for n, f in namespace.items() if n.startswith('test_') and callable(f))
        failed = 0
        for n in names:
            # Run them all in this process one after another (for hand use;
            # tests/run.py runs each in its own process, in parallel).
            rc = run_test(namespace[n])
            print('%s %s' % ({0: 'ok  ', SKIP_STATUS: 'skip'}.get(rc, 'FAIL'), n), flush=True)
            failed += rc == 1
            _cleanups.clear()
            _procs.clear()
        sys.exit(1 if failed else 0)
    if len(names) != 1 or names[0] not in namespace:
        print('usage: %s [TEST_NAME]' % sys.argv[0])
        sys.exit(2)
    if not os.access(os.path.join(BUILD, 'parley-tracker'), os.X_OK):
        print('no parley-tracker binary in %s (set PARLEY_BUILD or run make)' % BUILD)
        sys.exit(1)
    sys.exit(run_test(namespace[names[0]]))

"""test_memcheck: valgrind memcheck is clean on a short end-to-end scenario:
tools/memcheck.sh runs a tracker and two peers under memcheck,
chats a few messages in line mode and shuts everything down; any memcheck
error or definite leak fails.  `make memcheck` runs the same script.

Only for the normal build: valgrind cannot run ASan binaries, so under the
sanitized build this test reports itself skipped (the sanitizers cover that
build)."""
import os
import subprocess

import runner
from procs import BUILD, ROOT, Skip, fail

SCRIPT = os.path.join(ROOT, 'tools', 'memcheck.sh')


def sanitized(path):
    with open(path, 'rb') as f:
        return b'__asan_init' in f.read()


def test_memcheck_end_to_end():
    if sanitized(os.path.join(BUILD, 'parley-tracker')) or sanitized(os.path.join(BUILD, 'parley')):
        raise Skip('SKIPPED: %s is a sanitized build; valgrind memcheck runs on the '
                           'normal build only (ASan checks this one)' % BUILD)
    if subprocess.run(['sh', '-c', 'command -v valgrind'], stdout=subprocess.DEVNULL).returncode:
        fail('valgrind is not installed: make deps installs it (Debian package valgrind)')
    env = dict(os.environ)
    env.pop('ASAN_OPTIONS', None)
    out = subprocess.run([SCRIPT, BUILD], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         env=env, timeout=110)
    text = out.stdout.decode('utf-8', errors='replace')
    print(text)
    if out.returncode != 0:
        fail('tools/memcheck.sh %s failed (status %d); output above' % (BUILD, out.returncode))
    if 'memcheck: all clean' not in text:
        fail('tools/memcheck.sh did not report all clean')


if __name__ == '__main__':
    runner.main(globals())

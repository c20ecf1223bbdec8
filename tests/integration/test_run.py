"""test_run: `make run` and `make stop` (tools/run.sh), as a new user runs
them: in tmux panes, a real terminal, with the real script and binaries.

Each test builds a tree of its own in a temp dir: tools/run.sh copied,
build/parley and build/parley-tracker linked to the binaries under test, and
a Makefile holding the real Makefile's `run` and `stop` recipes (checked to
be the same lines), so the state (build/run/) is the test's and the demo
tracker listens on a free port (PARLEY_RUN_PORT), never on a developer's
5960.  What is checked: the demo tracker and echo outlive the make run that
started them and stop with the last one; Ctrl-C leaves make run with exit 0
and no make error line; two make runs starting at once start one tracker;
make stop; a listener on the port that is not a parley tracker is an error
naming it."""
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import runner
from procs import BUILD, ROOT, SANITIZER_MARKS, Skip, fail, on_cleanup, tempdir
from test_e2e import free_port
from test_tui import Tmux

RECIPES = {'run': '\t@tools/run.sh $(NAME)', 'stop': '\t@tools/run.sh --stop'}


class Tree:
    """A tree where `make run` runs tools/run.sh against the build under test."""

    def __init__(self):
        if not shutil.which('make') or not shutil.which('flock') or not shutil.which('setsid'):
            raise Skip('make, flock or setsid is missing')
        with open(os.path.join(ROOT, 'Makefile')) as f:
            real = f.read()
        for target, recipe in RECIPES.items():
            if not re.search(r'^%s:.*\n(?:\t.*\n)*%s$' % (target, re.escape(recipe)), real, re.M):
                fail('the Makefile\'s %s target no longer ends with %r: update test_run' %
                     (target, recipe))
        self.dir = tempdir('parley-run-')
        self.home = os.path.join(self.dir, 'home')  # $HOME: ~/.parley stays out of it
        os.makedirs(os.path.join(self.dir, 'tools'))
        os.makedirs(os.path.join(self.dir, 'build'))
        os.makedirs(self.home)
        shutil.copy2(os.path.join(ROOT, 'tools', 'run.sh'), os.path.join(self.dir, 'tools'))
        for b in ('parley', 'parley-tracker'):
            os.symlink(os.path.join(BUILD, b), os.path.join(self.dir, 'build', b))
        with open(os.path.join(self.dir, 'Makefile'), 'w') as f:
            f.write('.PHONY: run stop\nrun:\n%s\nstop:\n%s\n' % (RECIPES['run'], RECIPES['stop']))
        self.port = free_port()
        self.state = os.path.join(self.dir, 'build', 'run')
        on_cleanup(self.cleanup)

    def env_argv(self, *make_args):
        """argv of make in this tree, with the environment it needs."""
        return ['env', '-u', 'MAKEFLAGS', '-u', 'MFLAGS', '-u', 'MAKELEVEL',
                'HOME=' + self.home, 'USER=tester', 'PARLEY_RUN_PORT=%d' % self.port,
                'make', '--no-print-directory', '-C', self.dir] + list(make_args)

    def pane(self, name, w=110, h=30):
        return Tmux(self.env_argv('run', 'NAME=' + name), w, h)

    def make(self, *args, stdin=b'', timeout=60):
        p = subprocess.run(self.env_argv(*args), input=stdin, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout)
        return p.returncode, p.stdout.decode(errors='replace')

    def pid(self, which):
        """The pid in build/run/WHICH.pid while that process lives, else None."""
        try:
            with open(os.path.join(self.state, which + '.pid')) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        try:
            with open('/proc/%d/stat' % pid) as f:
                if f.read().rsplit(')', 1)[1].split()[0] == 'Z':
                    return None
        except OSError:
            return None
        return pid

    def demo_pids(self):
        """Every tracker and peer process started from this tree."""
        pids = []
        for d in os.listdir('/proc'):
            if not d.isdigit():
                continue
            try:
                if os.readlink('/proc/%s/cwd' % d) != os.path.realpath(self.dir):
                    continue
                with open('/proc/%s/cmdline' % d, 'rb') as f:
                    argv0 = f.read().split(b'\0')[0].decode(errors='replace')
            except OSError:
                continue
            if argv0.endswith('/parley') or argv0.endswith('/parley-tracker'):
                pids.append(int(d))
        return pids

    def wait_gone(self, timeout=15):
        deadline = time.monotonic() + timeout
        while self.demo_pids():
            if time.monotonic() > deadline:
                fail('still running from the make run tree: %s' % self.demo_pids())
            time.sleep(0.1)

    def logs_clean(self):
        for log in ('tracker.log', 'echo.log'):
            path = os.path.join(self.state, log)
            if os.path.exists(path):
                with open(path, errors='replace') as f:
                    text = f.read()
                if any(m in text for m in SANITIZER_MARKS):
                    fail('sanitizer report in %s:\n%s' % (log, text))

    def cleanup(self):
        for pid in self.demo_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def no_make_error(tm):
    text = tm.screen()
    if re.search(r'make(\[\d+\])?: \*\*\*', text):
        fail('make printed an error line:\n%s' % text)


def test_make_run_demo_outlives_the_first_peer():
    """alice's make run starts the tracker and echo; bob's joins them.  When
    alice leaves with Ctrl-C (exit 0, no make error line) bob keeps the
    tracker and echo; when bob quits, the last one, both stop."""
    tree = Tree()
    alice = tree.pane('alice')
    alice.wait(r'alice \| tracker: connected \| 1 online', 20)
    alice.wait(r'^ echo', 5)
    tracker, echo = tree.pid('tracker'), tree.pid('echo')
    if not tracker or not echo:
        fail('no demo tracker or echo running:\n%s' % alice.screen())
    bob = tree.pane('bob')
    bob.wait(r'bob \| tracker: connected \| 2 online', 20)
    alice.keys('C-c')
    alice.wait(r'^\[exited 0\]$', 15)
    no_make_error(alice)
    alice.wait(r'^bye$')
    if tree.pid('tracker') != tracker or tree.pid('echo') != echo:
        fail('the demo tracker or echo stopped with the first make run (tracker %s, echo %s)'
             % (tree.pid('tracker'), tree.pid('echo')))
    # bob still has both: echo answers, the tracker never went away.
    bob.wait(r'bob \| tracker: connected \| 1 online', 15)
    bob.line('/dial echo')
    bob.wait(r'connected to echo \(direct\)', 15)
    bob.line('still here?')
    bob.wait(r'echo: still here\?', 15)
    if 'tracker lost' in bob.screen():
        fail('bob lost the tracker when alice left:\n%s' % bob.screen())
    bob.line('/quit')
    bob.wait(r'^\[exited 0\]$', 15)
    bob.wait(r'the last make run is leaving: stopping the demo tracker and the echo peer')
    no_make_error(bob)
    tree.wait_gone()
    if os.listdir(os.path.join(tree.state, 'users')):
        fail('build/run/users/ is not empty: %s' % os.listdir(os.path.join(tree.state, 'users')))
    tree.logs_clean()


def test_make_run_two_at_once_start_one_tracker():
    """Two make runs starting at the same moment (line mode, no terminal):
    one starts the tracker, the other joins it; both register; the second
    to leave stops it."""
    tree = Tree()
    procs = []
    for name in ('carol', 'dave'):
        procs.append(subprocess.Popen(tree.env_argv('run', 'NAME=' + name),
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT))
    outs = [[], []]

    def pump(i):
        for line in procs[i].stdout:
            outs[i].append(line.decode(errors='replace'))
    threads = [threading.Thread(target=pump, args=(i,), daemon=True) for i in range(2)]
    for th in threads:
        th.start()
    deadline = time.monotonic() + 30
    while not all(any(l.startswith('registered ') for l in o) for o in outs):
        if time.monotonic() > deadline:
            fail('both make runs should register:\n%s\n--\n%s' % (''.join(outs[0]),
                                                                  ''.join(outs[1])))
        time.sleep(0.1)
    started = sum(1 for o in outs for l in o if 'starting a tracker' in l)
    joined = sum(1 for o in outs for l in o if 'joining the demo tracker' in l)
    if (started, joined) != (1, 1):
        fail('%d started a tracker and %d joined (want 1 and 1):\n%s\n--\n%s'
             % (started, joined, ''.join(outs[0]), ''.join(outs[1])))
    procs[0].stdin.write(b'/quit\n')
    procs[0].stdin.close()
    if procs[0].wait(15) != 0:
        fail('the first make run exited %s:\n%s' % (procs[0].returncode, ''.join(outs[0])))
    if not tree.pid('tracker') or not tree.pid('echo'):
        fail('the demo tracker or echo stopped while a make run is open')
    procs[1].stdin.write(b'/quit\n')
    procs[1].stdin.close()
    if procs[1].wait(15) != 0:
        fail('the second make run exited %s:\n%s' % (procs[1].returncode, ''.join(outs[1])))
    for th in threads:
        th.join(5)
    tree.wait_gone()
    tree.logs_clean()


def test_make_stop_and_a_killed_make_run():
    """make stop stops the demo tracker and echo whatever is open; a make
    run killed with SIGKILL does not keep them up for good: the next make
    run to leave drops its file and stops them."""
    tree = Tree()
    alice = tree.pane('alice')
    alice.wait(r'alice \| tracker: connected', 20)
    rc, out = tree.make('stop')
    if rc != 0 or 'stopped the demo tracker and the echo peer' not in out:
        fail('make stop exited %d:\n%s' % (rc, out))
    alice.wait(r'tracker: reconnecting', 15)
    if tree.pid('tracker') or tree.pid('echo'):
        fail('make stop left the tracker or echo running')
    rc, out = tree.make('stop')
    if rc != 0 or 'no demo tracker or echo peer was running' not in out:
        fail('a second make stop exited %d:\n%s' % (rc, out))
    alice.line('/quit')
    alice.wait(r'^\[exited 0\]$', 15)
    tree.wait_gone()

    # A make run killed -9 (its script and its peer): its file stays
    # behind, and the next make run to leave is still the last one.
    bob = tree.pane('bob')
    bob.wait(r'bob \| tracker: connected', 20)
    users = os.listdir(os.path.join(tree.state, 'users'))
    if len(users) != 1:
        fail('want one file in build/run/users, have %r' % users)
    script = int(users[0])
    peers = [p for p in tree.demo_pids() if p not in (tree.pid('tracker'), tree.pid('echo'))]
    for p in [script] + peers:
        os.kill(p, signal.SIGKILL)
    bob.wait(r'\[exited \d+\]', 15)  # the peer died in its TUI: anywhere on screen
    rc, out = tree.make('run', 'NAME=carol', stdin=b'/quit\n', timeout=60)
    if rc != 0 or 'joining the demo tracker' not in out or \
            'the last make run is leaving: stopping the demo tracker' not in out:
        fail('make run after a killed one exited %d:\n%s' % (rc, out))
    tree.wait_gone()
    tree.logs_clean()


def test_make_run_port_taken_by_something_else():
    """Something that is not a parley tracker on the port: make run says
    what it is and stops, rather than joining it and failing with a frame
    error."""
    tree = Tree()
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(('127.0.0.1', tree.port))
    ls.listen(8)
    stop = threading.Event()

    def serve():
        ls.settimeout(0.2)
        while not stop.is_set():
            try:
                c, _ = ls.accept()
            except socket.timeout:
                continue
            try:
                c.settimeout(2)
                c.recv(100)
                c.sendall(b'HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n')
            except OSError:
                pass
            c.close()
    th = threading.Thread(target=serve, daemon=True)
    th.start()
    on_cleanup(lambda: (stop.set(), th.join(2), ls.close()))
    rc, out = tree.make('run', 'NAME=alice', stdin=b'/quit\n')
    want = (r'make run: 127\.0\.0\.1:%d is taken by python3 \(pid %d\), which is not a parley '
            r'tracker' % (tree.port, os.getpid()))
    if rc == 0 or not re.search(want, out):
        fail('make run with a web server on its port exited %d, want /%s/:\n%s' % (rc, want, out))
    if 'argument list too long' in out or 'registered' in out:
        fail('make run went on with the wrong listener:\n%s' % out)
    if tree.demo_pids():
        fail('make run started something: %s' % tree.demo_pids())


if __name__ == '__main__':
    runner.main(globals())

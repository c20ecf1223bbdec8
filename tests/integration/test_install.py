"""test_install: what `make install` ships for installing and running parley as a
service, checked against the real build:

- `make install` / `make uninstall` (tools/install.mk) into a DESTDIR: the
  exact files (the programs parley-tracker and parley, their man pages, the
  unit, the bash completions, the bot example), their modes and contents,
  and that uninstall removes those and nothing else;
- the man pages docs/man/parley-tracker.1 and parley.1: no warnings from the man
  page linters present (man-db's `man --warnings`, mandoc -T lint), the
  sections an operator looks for, and every --flag of each binary's --help
  documented (and no flag documented that the binary lacks);
- the unit contrib/parley-tracker.service: `systemd-analyze verify`,
  `systemd-analyze security --offline=true` below EXPOSURE_MAX, its command
  line accepted by the tracker, and (under strace, normal builds only) the
  tracker's real system calls, socket families, memory mappings and writes
  staying inside what the sandbox allows.

A test exits 77 (skip) when the tool it needs is missing; `make deps`
installs them (man-db, groff-base, mandoc, systemd, strace).
"""
import os
import re
import shutil
import signal
import stat
import subprocess
import time

import runner
from procs import BUILD, LISTEN_RE, Proc, ROOT, Skip, TestFailure, fail, tempdir
from wire import registered_client

UNIT = 'parley-tracker.service'
UNIT_SRC = os.path.join(ROOT, 'contrib', UNIT)
MAN_DIR = os.path.join(ROOT, 'docs', 'man')
EXPOSURE_MAX = 2.0

# What `make install PREFIX=P` puts under DESTDIR, with modes.
def expected_files(prefix):
    return {
        prefix + '/bin/parley-tracker': 0o755,
        prefix + '/bin/parley': 0o755,
        prefix + '/share/man/man1/parley-tracker.1': 0o644,
        prefix + '/share/man/man1/parley.1': 0o644,
        prefix + '/lib/systemd/system/' + UNIT: 0o644,
        prefix + '/share/bash-completion/completions/parley-tracker': 0o644,
        prefix + '/share/bash-completion/completions/parley': 0o644,
        prefix + '/share/parley/examples/parley-bot.sh': 0o755,
        prefix + '/share/parley/install-manifest': 0o644,
    }


def need(tool):
    path = shutil.which(tool) or next((p for p in ('/usr/sbin/' + tool, '/sbin/' + tool)
                                       if os.access(p, os.X_OK)), None)
    if not path:
        raise Skip('%s is not installed (make deps installs it)' % tool)
    return path


def run(argv, cwd=ROOT, env=None, timeout=60, check=True):
    p = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    out, err = p.stdout.decode(errors='replace'), p.stderr.decode(errors='replace')
    if check and p.returncode != 0:
        fail('%s exited %d\n--- stdout:\n%s--- stderr:\n%s' % (' '.join(argv), p.returncode, out, err))
    return p.returncode, out, err


# ---------------------------------------------------------------- make install

def make_env():
    """The environment without what a parent make or the caller's shell
    would leak into the sub-make (MAKEFLAGS carries command-line variables
    such as B=; PREFIX and friends are read with ?=)."""
    env = dict(os.environ)
    for k in ('MAKEFLAGS', 'MFLAGS', 'MAKEOVERRIDES', 'MAKELEVEL', 'PREFIX', 'DESTDIR', 'BINDIR',
              'MANDIR', 'MAN1DIR', 'UNITDIR', 'DATADIR', 'INSTALL'):
        env.pop(k, None)
    env['LC_ALL'] = 'C'
    return env


def makefile_includes_install_mk():
    with open(os.path.join(ROOT, 'Makefile')) as f:
        return any(re.match(r'^\s*-?include\s+tools/install\.mk\s*$', l) for l in f)


def make(target, destdir, prefix=None, umask=None, check=True):
    """Runs `make TARGET` on the build under test.  -o keeps make from
    rebuilding the binaries (a sanitized build must not be relinked without
    its flags, nor any build from sources others are editing)."""
    argv = ['make', '--no-print-directory', '-C', ROOT]
    if not makefile_includes_install_mk():
        print('NOTE: Makefile lacks `include tools/install.mk`; passing it with -f')
        argv += ['-f', 'Makefile', '-f', 'tools/install.mk']
    argv += ['-o', os.path.join(BUILD, 'parley-tracker'), '-o', os.path.join(BUILD, 'parley'),
             'B=' + BUILD, 'DESTDIR=' + destdir, target]
    if prefix is not None:
        argv.append('PREFIX=' + prefix)
    old = os.umask(umask) if umask is not None else None
    try:
        return run(argv, env=make_env(), check=check)
    finally:
        if old is not None:
            os.umask(old)


def tree(root):
    """{'/path/below/root': mode} of every non-directory under root."""
    files = {}
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            files['/' + os.path.relpath(p, root)] = stat.S_IMODE(os.lstat(p).st_mode)
    return files


def same_bytes(a, b):
    with open(a, 'rb') as fa, open(b, 'rb') as fb:
        return fa.read() == fb.read()


def check_layout(dest, prefix):
    want = expected_files(prefix)
    got = tree(dest)
    if set(got) != set(want):
        fail('make install PREFIX=%s laid out\n  %s\nwant\n  %s' % (
            prefix, '\n  '.join(sorted(got)), '\n  '.join(sorted(want))))
    for p, mode in want.items():
        if got[p] != mode:
            fail('%s has mode %04o, want %04o' % (p, got[p], mode))
    for d, _, _ in os.walk(dest):
        m = stat.S_IMODE(os.stat(d).st_mode)
        if m != 0o755:
            fail('directory %s has mode %04o, want 0755 (whatever the umask)' % (d, m))
    for name in ('parley-tracker', 'parley'):
        if not same_bytes(os.path.join(BUILD, name), dest + prefix + '/bin/' + name):
            fail('installed %s differs from %s/%s' % (name, BUILD, name))
    for name in ('parley-tracker.1', 'parley.1'):
        if not same_bytes(os.path.join(MAN_DIR, name), dest + prefix + '/share/man/man1/' + name):
            fail('installed %s differs from docs/man/%s' % (name, name))
    for name in ('parley-tracker', 'parley'):
        src = os.path.join(ROOT, 'contrib', 'bash-completion', name)
        if not same_bytes(src, dest + prefix + '/share/bash-completion/completions/' + name):
            fail('installed completion %s differs from contrib/bash-completion/%s' % (name, name))
    bot = dest + prefix + '/share/parley/examples/parley-bot.sh'
    if not same_bytes(os.path.join(ROOT, 'contrib', 'parley-bot.sh'), bot):
        fail('installed %s differs from contrib/parley-bot.sh' % bot)
    with open(dest + prefix + '/lib/systemd/system/' + UNIT) as f:
        unit = f.read()
    execs = re.findall(r'^ExecStart=(\S+)', unit, re.M)
    if execs != [prefix + '/bin/parley-tracker']:
        fail('installed unit runs %r, want [%r]' % (execs, prefix + '/bin/parley-tracker'))
    with open(dest + prefix + '/share/parley/install-manifest') as f:
        manifest = f.read().split()
    want_manifest = sorted(p for p in want if not p.endswith('install-manifest'))
    if sorted(manifest) != want_manifest:
        fail('manifest lists %r, want %r' % (sorted(manifest), want_manifest))


def test_makefile_includes_install_mk():
    if not makefile_includes_install_mk():
        fail('the Makefile has no line `include tools/install.mk`, so `make install` does not exist')


def test_install_and_uninstall_prefix_usr():
    dest = os.path.join(tempdir('parley-destdir-'), 'stage')   # made by install
    # A strict umask: modes must come from install.mk, not from the caller.
    make('install', dest, prefix='/usr', umask=0o077)
    check_layout(dest, '/usr')
    # Someone else's files beside ours must survive uninstall.
    foreign = [dest + '/usr/bin/parley-other', dest + '/usr/share/man/man1/other.1',
               dest + '/usr/lib/systemd/system/other.service',
               dest + '/usr/share/bash-completion/completions/other']
    for p in foreign:
        with open(p, 'w') as f:
            f.write('not parley\n')
    make('uninstall', dest, prefix='/usr')
    left = set(tree(dest))
    want_left = set('/' + os.path.relpath(p, dest) for p in foreign)
    if left != want_left:
        fail('after uninstall the tree holds\n  %s\nwant only\n  %s' % (
            '\n  '.join(sorted(left)), '\n  '.join(sorted(want_left))))
    if os.path.exists(dest + '/usr/share/parley'):
        fail('uninstall left %s/usr/share/parley' % dest)
    # Nothing installed now: uninstall again is harmless and says so.
    rc, out, err = make('uninstall', dest, prefix='/usr')
    if 'no ' not in out or set(tree(dest)) != want_left:
        fail('a second uninstall should report no manifest and remove nothing:\n%s%s' % (out, err))


def test_install_default_prefix_and_uninstall_without_manifest():
    dest = os.path.join(tempdir('parley-destdir-'), 'stage')   # made by install
    make('install', dest)
    check_layout(dest, '/usr/local')
    os.unlink(dest + '/usr/local/share/parley/install-manifest')
    rc, out, err = make('uninstall', dest)
    left = tree(dest)
    if left:
        fail('uninstall without a manifest left %s\n%s%s' % (sorted(left), out, err))


def test_uninstall_refuses_foreign_manifest_entries():
    dest = os.path.join(tempdir('parley-destdir-'), 'stage')   # made by install
    make('install', dest, prefix='/usr')
    # DATADIR itself ends in /parley: a directory entry is refused too.
    victims = ['/etc/passwd', '/usr/bin/../../etc/parley-tracker', 'usr/bin/parley',
               '/usr/share/parley']
    os.makedirs(dest + '/etc')
    for v in ('/etc/passwd', '/etc/parley-tracker'):
        with open(dest + v, 'w') as f:
            f.write('keep me\n')
    with open(dest + '/usr/share/parley/install-manifest', 'a') as f:
        f.write('\n'.join(victims) + '\n')
    rc, out, err = make('uninstall', dest, prefix='/usr', check=False)
    if rc == 0:
        fail('uninstall with foreign manifest entries exited 0:\n%s%s' % (out, err))
    for v in ('/etc/passwd', '/etc/parley-tracker'):
        if not os.path.exists(dest + v):
            fail('uninstall removed %s, which install never wrote' % v)
    if not os.path.exists(dest + '/usr/share/parley/install-manifest'):
        fail('uninstall dropped the manifest although it refused entries')
    if 'refusing' not in err:
        fail('uninstall did not say what it refused:\n%s' % err)
    left = set(tree(dest))
    if left != {'/etc/passwd', '/etc/parley-tracker', '/usr/share/parley/install-manifest'}:
        fail('uninstall should still remove the genuine files; left %s' % sorted(left))


# ---------------------------------------------------------------- man pages

MAN_SECTIONS = {
    'parley-tracker': ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'OPTIONS', 'FILES', 'EXIT STATUS', 'SIGNALS',
                'EXAMPLES', 'SEE ALSO'],
    'parley': ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'OPTIONS', 'COMMANDS', 'EVENTS', 'FILES',
             'EXIT STATUS', 'SIGNALS', 'EXAMPLES', 'SEE ALSO'],
}


def man_env():
    env = dict(os.environ, LC_ALL='C.UTF-8', MANWIDTH='80', MANPAGER='cat', PAGER='cat')
    env.pop('MANOPT', None)
    return env


def lint_man(prog):
    page = os.path.join(MAN_DIR, prog + '.1')
    linters = []
    if shutil.which('man') and shutil.which('groff'):
        # man-db: --warnings passes -ww to groff; they come on stderr.
        rc, out, err = run(['man', '--warnings', '-l', page], env=man_env(), check=False)
        linters.append('man --warnings')
        if rc != 0 or err.strip():
            fail('man --warnings -l %s: status %d\n%s' % (page, rc, err))
        text = out
        for sec in MAN_SECTIONS[prog]:
            if not re.search(r'^%s$' % re.escape(sec), text, re.M):
                fail('%s renders without a %s section' % (page, sec))
        if len(text.splitlines()) < 40:
            fail('%s renders to only %d lines:\n%s' % (page, len(text.splitlines()), text))
    if shutil.which('mandoc'):
        rc, out, err = run(['mandoc', '-T', 'lint', '-W', 'warning', page], env=man_env(),
                           check=False)
        linters.append('mandoc -T lint')
        if rc != 0 or out.strip() or err.strip():
            fail('mandoc -T lint -W warning %s: status %d\n%s%s' % (page, rc, out, err))
    if not linters:
        raise Skip('neither man (man-db + groff-base) nor mandoc is installed')
    print('%s: clean under %s' % (page, ', '.join(linters)))


def test_man_tracker_lints_clean():
    lint_man('parley-tracker')


def test_man_peer_lints_clean():
    lint_man('parley')


FLAG_RE = re.compile(r'(?<![\w-])--[a-z][a-z0-9]*(?:-[a-z0-9]+)*')


def help_flags(prog):
    rc, out, err = run([os.path.join(BUILD, prog), '--help'], env=dict(os.environ, HOME=tempdir()),
                       timeout=10, check=False)
    if rc != 0:
        fail('%s --help exited %d:\n%s%s' % (prog, rc, out, err))
    flags = set(FLAG_RE.findall(out))
    if '--help' not in flags or len(flags) < 3:
        fail('%s --help lists too few flags (%s):\n%s' % (prog, sorted(flags), out))
    return flags


def man_flags(prog):
    """The --flags the OPTIONS section of the man page names (roff escapes
    undone); flags of other commands in the examples do not count."""
    with open(os.path.join(MAN_DIR, prog + '.1'), encoding='utf-8') as f:
        src = f.read()
    sections, cur = {}, None
    for l in src.splitlines():
        if l.startswith(('.\\"', "'\\\"")):
            continue
        if l.startswith('.SH'):
            cur = sections.setdefault(l[3:].strip().strip('"'), [])
        elif cur is not None:
            cur.append(l)
    if 'OPTIONS' not in sections:
        fail('docs/man/%s.1 has no .SH OPTIONS section' % prog)
    text = '\n'.join(sections['OPTIONS']).replace('\\-', '-').replace('\\&', '')
    text = re.sub(r'\\f[BIRP]|\\f\(..|\\f\[[A-Z]*\]', '', text)
    return set(FLAG_RE.findall(text))


def check_flags(prog):
    have, doc = help_flags(prog), man_flags(prog)
    missing = sorted(have - doc)
    stale = sorted(doc - have)
    if missing or stale:
        fail('docs/man/%s.1 OPTIONS and `%s --help` disagree:\n  in --help, not in the man page: %s\n'
             '  in the man page, not in --help: %s' % (prog, prog, missing or '-', stale or '-'))
    print('%s: %d flags, all documented: %s' % (prog, len(have), ' '.join(sorted(have))))


def test_man_tracker_documents_every_flag():
    check_flags('parley-tracker')


def test_man_peer_documents_every_flag():
    check_flags('parley')


# ---------------------------------------------------------------- systemd unit

def unit_copy(exec_path):
    """A copy of the unit whose ExecStart runs exec_path, in a fresh dir,
    plus a MANPATH dir holding our man pages (verify checks Documentation=)."""
    d = tempdir('parley-unit-')
    with open(UNIT_SRC) as f:
        text = f.read()
    text, n = re.subn(r'^ExecStart=/usr/local/bin/parley-tracker(?=\s)', 'ExecStart=' + exec_path,
                      text, flags=re.M)
    if n != 1:
        fail('%s: want exactly one "ExecStart=/usr/local/bin/parley-tracker ..." line, found %d'
             % (UNIT_SRC, n))
    path = os.path.join(d, UNIT)
    with open(path, 'w') as f:
        f.write(text)
    man1 = os.path.join(d, 'man', 'man1')
    os.makedirs(man1)
    for page in ('parley-tracker.1', 'parley.1'):
        shutil.copy(os.path.join(MAN_DIR, page), man1)
    return path, os.path.join(d, 'man')


def test_unit_verify():
    sa = need('systemd-analyze')
    path, manpath = unit_copy(os.path.join(BUILD, 'parley-tracker'))
    env = dict(os.environ, MANPATH=manpath, SYSTEMD_LOG_LEVEL='notice', LC_ALL='C')
    rc, out, err = run([sa, 'verify', path], env=env, check=False)
    ours = [l for l in (out + err).splitlines() if UNIT in l or 'parley' in l]
    if rc != 0 or ours:
        fail('systemd-analyze verify %s: status %d\n%s%s' % (path, rc, out, err))
    print('systemd-analyze verify: clean')


def test_unit_security_exposure():
    sa = need('systemd-analyze')
    path, _ = unit_copy(os.path.join(BUILD, 'parley-tracker'))
    rc, out, err = run([sa, 'security', '--offline=true', '--no-pager', path],
                       env=dict(os.environ, LC_ALL='C', SYSTEMD_COLORS='0'), check=False)
    m = re.search(r'Overall exposure level for %s:\s*([0-9.]+)\s+(\S+)' % re.escape(UNIT), out)
    if not m:
        if 'Unknown command verb' in err or "unrecognized option '--offline" in err:
            raise Skip('this systemd-analyze has no offline security check (needs systemd 250+)')
        fail('systemd-analyze security printed no exposure level (status %d):\n%s%s' % (rc, out, err))
    score = float(m.group(1))
    print('systemd-analyze security --offline=true: exposure %.1f %s (limit %.1f)'
          % (score, m.group(2), EXPOSURE_MAX))
    for l in out.splitlines():
        if re.search(r'\s\d+\.\d+\s*$', l):    # the settings that still cost exposure
            print('  ' + ' '.join(l.split()))
    if score >= EXPOSURE_MAX:
        fail('exposure %.1f is not below %.1f:\n%s' % (score, EXPOSURE_MAX, out))


def unit_exec_args():
    with open(UNIT_SRC) as f:
        m = re.search(r'^ExecStart=(\S+)((?:[ \t]+\S+)*)\s*$', f.read(), re.M)
    if not m:
        fail('%s has no ExecStart= line' % UNIT_SRC)
    return m.group(2).split()


NOBODY = 65534


def unit_umask():
    with open(UNIT_SRC) as f:
        m = re.search(r'^UMask=([0-7]+)\s*$', f.read(), re.M)
    return int(m.group(1), 8) if m else 0o022


def unprivileged_wrap():
    """As root, the argv prefix that drops to an unprivileged user the way
    DynamicUser= does (software acts differently as root: SQLite, for one,
    fchown()s its journal files to the database's owner only then)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which('setpriv')
    if not setpriv:
        raise Skip('running as root and setpriv (util-linux) is missing to drop privileges')
    return [setpriv, '--reuid=%d' % NOBODY, '--regid=%d' % NOBODY, '--clear-groups',
            '--no-new-privs', '--']


def start_as_unit(wrap=()):
    """Starts the tracker with the unit's arguments, %S pointing at a temp
    state root (like /var/lib with StateDirectory=parley made, mode 0700,
    owned by the service's user, and WorkingDirectory there), as an
    unprivileged user, listening on an ephemeral loopback port instead of
    the public defaults.  Returns (proc, state dir, addr)."""
    drop = unprivileged_wrap()
    root = tempdir('parley-state-')
    state = os.path.join(root, 'parley')
    os.mkdir(state, 0o700)
    if drop:
        os.chmod(root, 0o755)
        os.chown(state, NOBODY, NOBODY)
    args = [a.replace('%S', root).replace('%%', '%') for a in unit_exec_args()]
    if any('%' in a for a in args):
        fail('the unit ExecStart uses specifiers this test does not expand: %r' % args)
    argv = (list(wrap) + drop + [os.path.join(BUILD, 'parley-tracker')] + args
            + ['--listen', '127.0.0.1:0'])
    old = os.umask(unit_umask())      # the child inherits it, as from UMask=
    try:
        proc = Proc('tracker (unit args)', argv, cwd=state, stdin=False)
    finally:
        os.umask(old)
    m, _ = proc.wait_stderr(LISTEN_RE, timeout=20)
    return proc, state, m.group(1)


class _Addr:
    def __init__(self, addr):
        self.addr = addr


def exercise(addr):
    """Registration, lookup, list and ping: every path that touches the
    database."""
    tr = _Addr(addr)
    a = registered_client(tr, 'alice')
    b = registered_client(tr, 'bob')
    if 'bob' not in a.list_all():
        fail('bob not listed')
    r = a.lookup('bob')
    if r.get('t') != 'lookup_result':
        fail('lookup answered %r' % r)
    a.ping()
    a.close()
    b.close()


def test_unit_command_line_runs():
    proc, state, addr = start_as_unit()
    exercise(addr)
    proc.signal(signal.SIGTERM)
    rc = proc.wait_exit(15)
    proc.wait_output_done()
    proc.assert_clean()
    if rc != 0:
        fail('tracker with the unit arguments exited %d after SIGTERM' % rc)
    names = sorted(os.listdir(state))
    if 'tracker.db' not in names:
        fail('no tracker.db in the state directory; it holds %r' % names)
    mode = stat.S_IMODE(os.stat(os.path.join(state, 'tracker.db')).st_mode)
    if mode & ~(0o666 & ~unit_umask()):
        fail('tracker.db has mode %04o despite UMask=%04o' % (mode, unit_umask()))
    print('state directory after a run: %s (tracker.db mode %04o)' % (' '.join(names), mode))


# -------------------------------------------- the sandbox against real behaviour

def syscall_groups(sa):
    rc, out, err = run([sa, 'syscall-filter'], env=dict(os.environ, LC_ALL='C'))
    groups, cur = {}, None
    for l in out.splitlines():
        if l.startswith('@'):
            cur = groups.setdefault(l.split()[0], [])
        elif cur is not None and l.strip() and not l.strip().startswith('#'):
            cur.append(l.strip())
    return groups


def expand(groups, name, seen=None):
    seen = set() if seen is None else seen
    out = set()
    for e in groups.get(name, ()):
        if e.startswith('@'):
            if e not in seen:
                seen.add(e)
                out |= expand(groups, e, seen)
        else:
            out.add(e)
    return out


def unit_syscall_policy(groups):
    """The set SystemCallFilter= lines of the unit allow: the first list is
    an allow list, each later ~list removes from it."""
    with open(UNIT_SRC) as f:
        lines = re.findall(r'^SystemCallFilter=(.*)$', f.read(), re.M)
    allowed = None
    for l in lines:
        deny = l.startswith('~')
        items = l.lstrip('~').split()
        names = set()
        for i in items:
            names |= expand(groups, i) if i.startswith('@') else {i}
        if allowed is None:
            if deny:
                fail('this test expects the first SystemCallFilter= to be an allow list')
            allowed = names
        elif deny:
            allowed -= names
        else:
            allowed |= names
    if not allowed:
        fail('%s has no SystemCallFilter=' % UNIT_SRC)
    return allowed


def unit_families():
    with open(UNIT_SRC) as f:
        m = re.search(r'^RestrictAddressFamilies=(.*)$', f.read(), re.M)
    return set(m.group(1).split()) if m else None


def sanitized_build():
    with open(os.path.join(BUILD, 'parley-tracker'), 'rb') as f:
        return b'__asan_init' in f.read()


def tracker_child(strace_pid, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open('/proc/%d/task/%d/children' % (strace_pid, strace_pid)) as f:
                kids = f.read().split()
            if kids:
                return int(kids[0])
        except OSError:
            pass
        time.sleep(0.05)
    fail('strace started no tracker process')


CALL_RE = re.compile(r'^\d+\s+(?:<\.\.\. (\w+) resumed>|(\w+)\((.*))$')
WRITE_FLAGS = ('O_WRONLY', 'O_RDWR', 'O_CREAT', 'O_TRUNC')
PATH_CALLS = {'unlink', 'unlinkat', 'rename', 'renameat', 'renameat2', 'mkdir', 'mkdirat',
              'rmdir', 'link', 'linkat', 'symlink', 'symlinkat', 'truncate', 'chmod', 'fchmodat',
              'chown', 'fchownat', 'mknod', 'mknodat', 'utimensat'}


def test_unit_sandbox_fits_the_tracker():
    """Runs the tracker as the unit would (its arguments, a session that
    touches the database, SIGTERM) under strace, and checks what it did
    against the unit: every system call inside SystemCallFilter=, sockets
    only of RestrictAddressFamilies=, no writable+executable memory
    (MemoryDenyWriteExecute=), writes only to the state directory and
    private /tmp (ProtectSystem=strict, PrivateTmp=), nothing under /home or
    /root (ProtectHome=) and only per-process files in /proc
    (ProcSubset=pid).  This is what `systemctl start` would otherwise be
    the first to find out, with the tracker killed by a seccomp filter."""
    strace = need('strace')
    sa = need('systemd-analyze')
    if sanitized_build():
        raise Skip('the sanitizer runtime makes system calls the tracker does not; '
                   'checked on the normal build')
    allowed = unit_syscall_policy(syscall_groups(sa))
    families = unit_families()
    log = os.path.join(tempdir('parley-strace-'), 'trace')
    wrap = [strace, '-f', '-qq', '-s', '256', '-e', 'signal=none', '-o', log]
    try:
        proc, state, addr = start_as_unit(wrap)
    except TestFailure:
        if os.path.exists(log) and os.path.getsize(log) == 0:
            raise Skip('strace cannot trace here (ptrace not permitted?)')
        raise
    exercise(addr)
    os.kill(tracker_child(proc.p.pid), signal.SIGTERM)
    rc = proc.wait_exit(20)
    proc.wait_output_done()
    if rc != 0:
        fail('tracker under strace exited %d after SIGTERM' % rc)

    state_real = os.path.realpath(state)
    writable = (state_real + '/', '/tmp/', '/var/tmp/', '/dev/null')
    used, problems = set(), []
    with open(log, errors='replace') as f:
        trace = f.read().splitlines()
    # What strace and setpriv do before the tracker starts is not the
    # tracker's (systemd does that part itself, before the sandbox closes).
    exe = re.compile(r'^\d+\s+execve\("%s",.*\) = 0$' % re.escape(os.path.join(BUILD, 'parley-tracker')))
    start = next((i for i, l in enumerate(trace) if exe.match(l)), None)
    if start is None:
        fail('no successful execve of the tracker in the trace:\n  ' + '\n  '.join(trace[:40]))
    for line in trace[start:]:
        m = CALL_RE.match(line)
        if not m:
            continue
        name = m.group(1) or m.group(2)
        args = m.group(3) or ''
        used.add(name)
        if name == 'socket' and families is not None:
            fam = args.split(',')[0].strip()
            if fam not in families:
                problems.append('socket family %s not in RestrictAddressFamilies=: %s' % (fam, line))
        if name == 'mmap' and 'PROT_WRITE' in args and 'PROT_EXEC' in args:
            problems.append('writable+executable mapping (MemoryDenyWriteExecute=): ' + line)
        if name in ('mprotect', 'pkey_mprotect') and 'PROT_EXEC' in args:
            problems.append('mprotect to executable (MemoryDenyWriteExecute=): ' + line)
        paths = re.findall(r'"([^"]*)"', args)
        if name in ('open', 'openat', 'openat2', 'creat') and paths:
            p = paths[0]
            flags = args.split('"', 2)[-1]
            full = p if p.startswith('/') else os.path.join(state_real, p)
            if (name == 'creat' or any(x in flags for x in WRITE_FLAGS)) and \
                    not full.startswith(writable):
                problems.append('write outside the state directory (ProtectSystem=strict): ' + line)
            if full.startswith(('/home/', '/root/', '/run/user/')) or full in ('/home', '/root'):
                problems.append('home directory access (ProtectHome=): ' + line)
            if full.startswith('/proc/') and not re.match(r'^/proc/(self|thread-self|\d+)(/|$)', full):
                problems.append('/proc file hidden by ProcSubset=pid: ' + line)
        if name in PATH_CALLS and paths:
            full = paths[0] if paths[0].startswith('/') else os.path.join(state_real, paths[0])
            if not full.startswith(writable):
                problems.append('change outside the state directory (ProtectSystem=strict): ' + line)
    outside = sorted(used - allowed)
    if outside:
        problems.append('system calls outside SystemCallFilter= (they would fail with EPERM): %s'
                        % ' '.join(outside))
    print('the tracker made %d kinds of system call, all allowed: %s' % (len(used), ' '.join(sorted(used)))
          if not outside else 'system calls used: %s' % ' '.join(sorted(used)))
    if problems:
        fail('the unit sandbox does not fit the tracker:\n  ' + '\n  '.join(problems))


if __name__ == '__main__':
    runner.main(globals())

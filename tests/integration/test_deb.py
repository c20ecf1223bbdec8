"""test_deb: the Debian packages of `make deb` (debian/, tools/deb.mk) and the
bash completion of contrib/bash-completion/.

- debian/changelog's version is shared/version.h's (and --version's);
- the completion, sourced in bash and called as bash would call it,
  completes exactly the flags of each program's --help, the values of --ui
  and --log-level, directories after --home and files after --db/--config;
- `make deb-build` (the packages, then lintian, which must find no error and
  no warning) gives parley and parley-tracker with exactly the files listed
  here, and each lintian override has its reason above it;
- as root, `dpkg -i` of both on this system, then the installed programs,
  man pages, unit (enabled), completion (found by bash-completion's loader)
  and bot example run, a tracker and `parley --user alice` talk; `dpkg -P`
  then leaves no file behind that was not there before.

The package tests skip (77) without dpkg-buildpackage, debhelper or lintian
(`make deps-deb` installs them; `make test` runs it), and on a sanitized
BUILD: the packages are built from the sources with the distribution's
flags, not from BUILD, so the normal build's run checks them.  The install
test also needs root and skips when parley or parley-tracker is already
installed (it would remove them).
"""
import fcntl
import glob
import io
import os
import re
import shlex
import shutil
import signal
import subprocess
import tarfile
import time

import runner
from procs import BUILD, LISTEN_RE, Proc, ROOT, Skip, fail, on_cleanup, tempdir

DEB_DIR = os.path.join(ROOT, 'build', 'deb')
COMPLETION = os.path.join(ROOT, 'contrib', 'bash-completion', 'parley')
PROGRAMS = ('parley', 'parley-tracker')
FLAG_RE = re.compile(r'(?<![\w-])--[a-z][a-z0-9]*(?:-[a-z0-9]+)*')

# What each package holds besides its directories: path -> mode.  The
# gzipped documents and man pages are checked by name only.
DEB_FILES = {
    'parley': {
        '/usr/bin/parley': 0o755,
        '/usr/share/man/man1/parley.1.gz': 0o644,
        '/usr/share/bash-completion/completions/parley': 0o644,
        '/usr/share/doc/parley/examples/parley-bot.sh': 0o755,
        '/usr/share/doc/parley/README.md.gz': 0o644,
        '/usr/share/doc/parley/changelog.Debian.gz': 0o644,
        '/usr/share/doc/parley/copyright': 0o644,
        '/usr/share/lintian/overrides/parley': 0o644,
    },
    'parley-tracker': {
        '/usr/bin/parley-tracker': 0o755,
        '/usr/share/man/man1/parley-tracker.1.gz': 0o644,
        '/lib/systemd/system/parley-tracker.service': 0o644,
        '/usr/share/bash-completion/completions/parley-tracker': 0o644,
        '/usr/share/doc/parley-tracker/README.md.gz': 0o644,
        '/usr/share/doc/parley-tracker/SECURITY.md.gz': 0o644,
        '/usr/share/doc/parley-tracker/changelog.Debian.gz': 0o644,
        '/usr/share/doc/parley-tracker/copyright': 0o644,
        '/usr/share/lintian/overrides/parley-tracker': 0o644,
    },
}
# The shared libraries each program links, as ${shlibs:Depends} must name them.
DEB_LIBS = {
    'parley': ['libc6', 'libuv1', 'libmsgpackc2', 'libsodium23', 'libncursesw6', 'libtinfo6',
               'libsqlite3-0'],
    'parley-tracker': ['libc6', 'libuv1', 'libmsgpackc2', 'libsodium23', 'libsqlite3-0',
                       'libicuNN', 'libpq5'],
}
# ICU's package carries its soname version (libicu72 in Debian 12): any one.
ICU_PKG_RE = re.compile(r'^libicu\d+$')


def run(argv, cwd=ROOT, env=None, timeout=60, check=True, input=None):
    p = subprocess.run(argv, cwd=cwd, env=env, input=input, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    out, err = p.stdout.decode(errors='replace'), p.stderr.decode(errors='replace')
    if check and p.returncode != 0:
        fail('%s exited %d\n--- stdout:\n%s--- stderr:\n%s' % (' '.join(argv), p.returncode, out, err))
    return p.returncode, out, err


def clean_env(**extra):
    """No variables of a parent make (MAKEFLAGS carries command-line
    variables such as B=) nor install directories (tools/install.mk reads
    them with ?=)."""
    env = dict(os.environ)
    for k in ('MAKEFLAGS', 'MFLAGS', 'MAKEOVERRIDES', 'MAKELEVEL', 'PREFIX', 'DESTDIR', 'BINDIR',
              'MANDIR', 'MAN1DIR', 'UNITDIR', 'COMPLETIONSDIR', 'DATADIR', 'INSTALL', 'MANPATH',
              'MANOPT', 'DEB_BUILD_OPTIONS'):
        env.pop(k, None)
    env.update(LC_ALL='C.UTF-8', **extra)
    return env


# ---------------------------------------------------------------- version

def changelog_version():
    with open(os.path.join(ROOT, 'debian', 'changelog')) as f:
        first = f.readline()
    m = re.match(r'^parley \(([^()\s]+)\) \S+; urgency=\w+$', first.rstrip('\n'))
    if not m:
        fail('debian/changelog: first line %r is not "parley (VERSION) DIST; urgency=U"' % first)
    return m.group(1)


def header_version():
    with open(os.path.join(ROOT, 'shared', 'version.h')) as f:
        m = re.search(r'^#define PARLEY_VERSION "([^"]+)"$', f.read(), re.M)
    if not m:
        fail('shared/version.h has no #define PARLEY_VERSION "..."')
    return m.group(1)


def test_changelog_version_is_version_h():
    deb, ver = changelog_version(), header_version()
    if not re.match(r'^%s-\d+$' % re.escape(ver), deb):
        fail('debian/changelog names %s; shared/version.h says %s (want %s-N): add a changelog '
             'entry (dch -v %s-1) when the version changes' % (deb, ver, ver, ver))
    for prog in PROGRAMS:
        rc, out, err = run([os.path.join(BUILD, prog), '--version'], timeout=10)
        if not out.startswith('%s %s ' % (prog, ver)):
            fail('%s --version says %r, want "%s %s ..."' % (prog, out, prog, ver))
    print('debian/changelog %s, shared/version.h %s, both programs say %s' % (deb, ver, ver))


# ---------------------------------------------------------------- completion

def complete(script, words, breaks=None, loader=False):
    """COMPREPLY of the completion function for the command line `words`
    (the last one being completed), as bash-completion or bash would call
    it.  loader: load the function as bash-completion does for a command
    typed (__load_completion, from the installed completions directory)
    instead of sourcing script."""
    cmd = words[0]
    prog = ''
    if loader:
        prog += ('. /usr/share/bash-completion/bash_completion\n'
                 '__load_completion %s || { echo "no completion loaded for %s" >&2; exit 3; }\n'
                 % (cmd, cmd))
    else:
        prog += '. %s\n' % shlex.quote(script)
    if breaks is not None:
        prog += 'COMP_WORDBREAKS=%s\n' % shlex.quote(breaks)
    prog += ('fn=$(complete -p %s | sed -n "s/.* -F \\([^ ]*\\) .*/\\1/p")\n'
             '[ -n "$fn" ] || { echo "no complete -F for %s" >&2; exit 3; }\n'
             'COMP_WORDS=(%s); COMP_CWORD=%d\n'
             'COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}\n'
             '"$fn" %s %s %s\n'
             'printf "%%s\\n" "${COMPREPLY[@]}"\n'
             % (cmd, cmd, ' '.join(shlex.quote(w) for w in words), len(words) - 1,
                shlex.quote(cmd), shlex.quote(words[-1]),
                shlex.quote(words[-2] if len(words) > 1 else '')))
    rc, out, err = run(['bash', '--norc', '--noprofile', '-c', prog], env=clean_env(), check=False,
                       timeout=20)
    if rc != 0 or err.strip():
        fail('completing %r: bash exited %d:\n%s%s' % (words, rc, out, err))
    return [l for l in out.split('\n') if l]


def help_text(path):
    rc, out, err = run([path, '--help'], env=clean_env(HOME=tempdir()), timeout=10)
    return out


def help_flags(path):
    flags = set(FLAG_RE.findall(help_text(path)))
    if '--help' not in flags or '--version' not in flags or len(flags) < 5:
        fail('%s --help lists too few flags: %s' % (path, sorted(flags)))
    return flags


def check_completion(program_dir, script, loader=False):
    """The completion of both programs against program_dir's --help: every
    flag, no other, and the values.  Returns a list of problems."""
    problems = []

    def want(words, expect, breaks=None):
        got = complete(script, words, breaks=breaks, loader=loader)
        if sorted(got) != sorted(expect):
            problems.append('%r completes to %r, want %r' % (words, got, sorted(expect)))

    for prog in PROGRAMS:
        path = os.path.join(program_dir, prog)
        flags = help_flags(path)
        got = set(complete(script, [prog, '--'], loader=loader))
        if got != flags:
            problems.append('%s --<Tab> completes %s; `%s --help` lists %s:\n  only completed: %s\n'
                            '  only in --help: %s' % (prog, len(got), prog, len(flags),
                                                      sorted(got - flags) or '-',
                                                      sorted(flags - got) or '-'))
        text = help_text(path)
        m = re.search(r'--log-level LEVEL\s+(.*)', text)
        if not m or not all(l in m.group(1) for l in ('error', 'warn', 'info', 'debug')):
            problems.append('%s --help no longer names the levels error/warn/info/debug on its '
                            '--log-level line; update the completion' % prog)
        want([prog, '--log-level', ''], ['error', 'warn', 'info', 'debug'])
        want([prog, '--log-level', 'd'], ['debug'])
        want([prog, '--log-level', '=', 'w'], ['warn'])
        want([prog, '--version', '--hel'], ['--help'])
    if not re.search(r'--ui line\|tui\|json\s', help_text(os.path.join(program_dir, 'parley'))):
        problems.append('parley --help no longer says "--ui line|tui|json"; update the completion')
    want(['parley', '--u'], ['--ui', '--user'])
    want(['parley', '--ui', ''], ['line', 'tui', 'json'])
    want(['parley', '--ui', 'j'], ['json'])
    want(['parley', '--ui', '='], ['line', 'tui', 'json'])      # "--ui=", "=" a word break
    want(['parley', '--ui', '=', 't'], ['tui'])                 # "--ui=t"
    want(['parley', '--ui=t'], ['--ui=tui'], breaks=' \t\n"\'><;|&(:')   # "=" no word break
    want(['parley', '--user', ''], [])
    want(['parley', '--tracker', ''], [])
    want(['parley-tracker', '--c'], ['--config'])
    want(['parley-tracker', '--max-'], ['--max-conns', '--max-conns-per-addr'])
    want(['parley-tracker', '--ttl', ''], [])
    d = tempdir('parley-compl-')
    os.mkdir(os.path.join(d, 'homedir'))
    with open(os.path.join(d, 'homefile'), 'w') as f:
        f.write('x\n')
    want(['parley', '--home', d + '/ho'], [d + '/homedir'])
    want(['parley-tracker', '--db', d + '/ho'], [d + '/homedir', d + '/homefile'])
    want(['parley-tracker', '--config', d + '/homef'], [d + '/homefile'])
    return problems


def test_completion_of_the_tree():
    """contrib/bash-completion/parley against BUILD's programs, sourced by
    hand (no bash-completion needed)."""
    problems = check_completion(BUILD, COMPLETION)
    if problems:
        fail('contrib/bash-completion/parley:\n  ' + '\n  '.join(problems))
    link = os.path.join(ROOT, 'contrib', 'bash-completion', 'parley-tracker')
    if os.path.realpath(link) != os.path.realpath(COMPLETION):
        fail('contrib/bash-completion/parley-tracker should be the same script (a symlink to parley)')
    print('the completion completes every flag of both --help outputs and the values')


# ---------------------------------------------------------------- the packages

def need_deb_tools():
    missing = [t for t in ('dpkg-buildpackage', 'dpkg-deb', 'dh', 'lintian') if not shutil.which(t)]
    if missing:
        raise Skip('%s not installed: `make deps-deb` installs them (`make test` runs it)'
                   % ', '.join(missing))


def sanitized_build():
    with open(os.path.join(BUILD, 'parley-tracker'), 'rb') as f:
        return b'__asan_init' in f.read()


def lock():
    """One test at a time builds or installs the packages (run.py runs tests
    and builds in parallel); released when the process exits."""
    os.makedirs(os.path.join(ROOT, 'build'), exist_ok=True)
    f = open(os.path.join(ROOT, 'build', '.deb-test.lock'), 'w')
    fcntl.flock(f, fcntl.LOCK_EX)
    on_cleanup(f.close)


def built_debs():
    """Builds the packages if a source is newer than the last build (make
    deb-build: dpkg-buildpackage in a copy, then lintian), returns
    {package: path of its .deb}."""
    need_deb_tools()
    if sanitized_build():
        raise Skip('the packages are built from the sources with the distribution\'s flags, not '
                   'from this sanitized BUILD; the normal build\'s run checks them')
    lock()
    rc, out, err = run(['make', '--no-print-directory', '-C', ROOT, 'deb-build'],
                       env=clean_env(), timeout=110, check=False)
    if rc != 0:
        fail('make deb-build exited %d:\n%s%s' % (rc, out[-6000:], err[-4000:]))
    ver = changelog_version()
    arch = run(['dpkg', '--print-architecture'])[1].strip()
    debs = {}
    for pkg in DEB_FILES:
        path = os.path.join(DEB_DIR, '%s_%s_%s.deb' % (pkg, ver, arch))
        if not os.path.exists(path):
            fail('make deb-build made no %s; %s holds %s' % (path, DEB_DIR, os.listdir(DEB_DIR)))
        debs[pkg] = path
    stray = sorted(set(glob.glob(os.path.join(DEB_DIR, 'parley*.deb'))) - set(debs.values()))
    if stray:
        fail('%s holds other packages %s: `apt install ./build/deb/parley*.deb` would take them'
             % (DEB_DIR, stray))
    return debs


def test_deb_lintian_clean():
    debs = built_debs()
    changes = glob.glob(os.path.join(DEB_DIR, '*.changes'))
    if len(changes) != 1:
        fail('want one .changes in %s, found %s' % (DEB_DIR, changes))
    rc, out, err = run(['lintian', '--display-info', '--pedantic', '--show-overrides', changes[0]],
                       env=clean_env(), timeout=100, check=False)
    print(out + err)
    bad = [l for l in (out + err).splitlines() if re.match(r'^[EW]: ', l)]
    if rc != 0 or bad:
        fail('lintian %s: status %d, errors or warnings:\n  %s' % (changes[0], rc, '\n  '.join(bad)))
    overridden = [l for l in out.splitlines() if l.startswith('O: ')]
    # Each override in debian/*.lintian-overrides has a comment (its reason)
    # right above it.
    for path in glob.glob(os.path.join(ROOT, 'debian', '*lintian-overrides')) + \
            glob.glob(os.path.join(ROOT, 'debian', 'source', 'lintian-overrides')):
        with open(path) as f:
            lines = f.read().splitlines()
        for i, l in enumerate(lines):
            if l.strip() and not l.startswith('#') and (i == 0 or not lines[i - 1].startswith('#')):
                fail('%s line %d: override %r without a reason (a # comment) above it'
                     % (path, i + 1, l))
    print('lintian --pedantic: no errors, no warnings; %d override(s), each with its reason: %s'
          % (len(overridden), ' '.join(os.path.basename(d) for d in debs.values())))


def deb_contents(path):
    """{path: mode} of what a .deb holds besides directories."""
    p = subprocess.run(['dpkg-deb', '--fsys-tarfile', path], stdout=subprocess.PIPE, check=True)
    files = {}
    with tarfile.open(fileobj=io.BytesIO(p.stdout)) as t:
        for m in t.getmembers():
            if not m.isdir():
                files['/' + os.path.normpath(m.name)] = m.mode if m.isfile() else 'link'
    return files


def deb_field(path, field):
    return run(['dpkg-deb', '--field', path, field])[1].strip()


def deb_file(path, member):
    d = tempdir('parley-debx-')
    run(['dpkg-deb', '-x', path, d])
    with open(d + member, 'rb') as f:
        return f.read()


def test_deb_contents():
    debs = built_debs()
    ver = changelog_version()
    for pkg, path in debs.items():
        files = deb_contents(path)
        want = DEB_FILES[pkg]
        if set(files) != set(want):
            fail('%s holds\n  %s\nwant\n  %s' % (os.path.basename(path), '\n  '.join(sorted(files)),
                                                '\n  '.join(sorted(want))))
        for f, mode in want.items():
            if files[f] != mode:
                fail('%s: %s has mode %s, want %04o (a regular file)' % (pkg, f, files[f], mode))
        if deb_field(path, 'Version') != ver:
            fail('%s: Version %s, want %s' % (pkg, deb_field(path, 'Version'), ver))
        depends = deb_field(path, 'Depends')
        libs = [ICU_PKG_RE.sub('libicuNN', d.split()[0]) for d in depends.split(', ')]
        if sorted(libs) != sorted(DEB_LIBS[pkg]):
            fail('%s: Depends %r, want (from ${shlibs:Depends}) exactly %s'
                 % (pkg, depends, DEB_LIBS[pkg]))
    unit = deb_file(debs['parley-tracker'], '/lib/systemd/system/parley-tracker.service').decode()
    execs = re.findall(r'^ExecStart=(\S+)', unit, re.M)
    if execs != ['/usr/bin/parley-tracker']:
        fail('the packaged unit runs %r, want ["/usr/bin/parley-tracker"]' % execs)
    if not re.search(r'^DynamicUser=yes$', unit, re.M):
        fail('the packaged unit lost DynamicUser=yes')
    comp = {p: deb_file(debs[p], '/usr/share/bash-completion/completions/' + p) for p in PROGRAMS}
    with open(COMPLETION, 'rb') as f:
        src = f.read()
    for p, data in comp.items():
        if data != src:
            fail('%s: its completion differs from contrib/bash-completion/parley' % p)
    # The maintainer scripts dh_installsystemd wrote: enable (and start,
    # where systemd runs) on install, stop on remove, forget on purge.
    ctl = tempdir('parley-debctl-')
    run(['dpkg-deb', '-e', debs['parley-tracker'], ctl])
    scripts = {}
    for s in ('postinst', 'prerm', 'postrm'):
        with open(os.path.join(ctl, s)) as f:
            scripts[s] = f.read()
    for s, needle in (('postinst', "deb-systemd-helper enable 'parley-tracker.service'"),
                      ('postinst', "deb-systemd-invoke $_dh_action 'parley-tracker.service'"),
                      ('prerm', "deb-systemd-invoke stop 'parley-tracker.service'"),
                      ('postrm', "deb-systemd-helper purge 'parley-tracker.service'"),
                      ('postrm', 'rm -rf /var/lib/private/parley')):
        if needle not in scripts[s]:
            fail('parley-tracker %s lacks %r:\n%s' % (s, needle, scripts[s]))
    for pkg in debs:
        print('%s: %s' % (os.path.basename(debs[pkg]), ' '.join(sorted(DEB_FILES[pkg]))))


# ---------------------------------------------------------------- install, run, purge

SNAPSHOT_DIRS = ('/usr', '/etc', '/var/lib', '/opt', '/srv', '/lib', '/bin', '/sbin')


def snapshot():
    """Every path (files, directories, links) under SNAPSHOT_DIRS."""
    paths = set()
    seen = set()
    for top in SNAPSHOT_DIRS:
        real = os.path.realpath(top)
        if real in seen or not os.path.isdir(real):
            continue
        seen.add(real)
        for d, dirs, names in os.walk(real):
            for n in dirs + names:
                paths.add(os.path.join(d, n))
    return paths


def dpkg_status(pkg):
    p = subprocess.run(['dpkg-query', '-W', '-f=${db:Status-Status}', pkg],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    return p.stdout.decode().strip() if p.returncode == 0 else 'not-installed'


def test_deb_install_run_purge():
    if os.geteuid() != 0:
        raise Skip('dpkg -i needs root (CI runs make test as root)')
    debs = built_debs()
    for pkg in debs:
        st = dpkg_status(pkg)
        if st not in ('not-installed', ''):
            raise Skip('%s is %s on this system: this test would remove it; '
                       '`apt purge parley parley-tracker` to run it' % (pkg, st))
    before = snapshot()
    purged = []

    def purge():
        if not purged:
            purged.append(1)
            run(['dpkg', '--purge'] + list(debs), env=clean_env(DEBIAN_FRONTEND='noninteractive'),
                timeout=60, check=False)
    on_cleanup(purge)
    rc, out, err = run(['dpkg', '--install'] + list(debs.values()),
                       env=clean_env(DEBIAN_FRONTEND='noninteractive'), timeout=90, check=False)
    if rc != 0:
        fail('dpkg --install exited %d (the libraries of Depends installed? make deps):\n%s%s'
             % (rc, out, err))
    problems = installed_problems()
    purge()
    after = snapshot()
    for pkg in debs:
        if dpkg_status(pkg) != 'not-installed':
            problems.append('after dpkg --purge, %s is still %s' % (pkg, dpkg_status(pkg)))
    new, gone = sorted(after - before), sorted(before - after)
    if new:
        problems.append('dpkg --purge left behind:\n    ' + '\n    '.join(new))
    if gone:
        problems.append('install and purge removed what was there before:\n    ' + '\n    '.join(gone))
    if shutil.which('systemctl'):
        rc, out, err = run(['systemctl', 'is-enabled', 'parley-tracker.service'], check=False)
        if rc == 0:
            problems.append('after purge, systemctl is-enabled parley-tracker says %r' % out.strip())
    if problems:
        fail('the installed packages:\n  ' + '\n  '.join(problems))
    print('installed, ran, purged: no file left, none lost (%d paths compared)' % len(before))


def installed_problems():
    """Runs what a new user would after `apt install`; returns what failed."""
    problems = []
    ver = header_version()
    home = tempdir('parley-debhome-')
    env = clean_env(HOME=home, MANPAGER='cat', PAGER='cat', MANWIDTH='80')
    for prog in PROGRAMS:
        if shutil.which(prog, path=os.environ.get('PATH', '/usr/bin')) != '/usr/bin/' + prog:
            problems.append('%s on the PATH is %s, not /usr/bin/%s'
                            % (prog, shutil.which(prog), prog))
    rc, out, err = run(['/usr/bin/parley', '--version'], env=env, check=False)
    if rc != 0 or not out.startswith('parley %s ' % ver):
        problems.append('parley --version: status %d, %r%r' % (rc, out, err))
    rc, out, err = run(['/usr/bin/parley-tracker', '--help'], env=env, check=False)
    if rc != 0 or not out.startswith('usage: parley-tracker'):
        problems.append('parley-tracker --help: status %d, %r%r' % (rc, out[:200], err))
    for page in PROGRAMS:
        rc, out, err = run(['man', page], env=env, check=False)
        if rc != 0 or not re.search(r'^NAME$', out, re.M) or '--help' not in out:
            problems.append('man %s: status %d\n%s%s' % (page, rc, out[:400], err))
        rc, out, err = run(['man', '-w', page], env=env, check=False)
        if out.strip() != '/usr/share/man/man1/%s.1.gz' % page:
            problems.append('man -w %s: %r, want /usr/share/man/man1/%s.1.gz' % (page, out, page))
    # Enabled: the link dh_installsystemd's postinst made (started only where
    # systemd runs; not in a container without it).
    want = '/etc/systemd/system/multi-user.target.wants/parley-tracker.service'
    if os.path.realpath(want) != os.path.realpath('/lib/systemd/system/parley-tracker.service'):
        problems.append('%s is not a link to the unit: not enabled' % want)
    if shutil.which('systemctl'):
        rc, out, err = run(['systemctl', 'is-enabled', 'parley-tracker.service'], check=False)
        if out.strip() != 'enabled':
            problems.append('systemctl is-enabled parley-tracker: %r %r' % (out, err))
    # The completion as bash-completion loads it when the user first types
    # `parley <Tab>`: from /usr/share/bash-completion/completions.
    if os.path.exists('/usr/share/bash-completion/bash_completion'):
        try:
            problems += ['installed completion: ' + p
                         for p in check_completion('/usr/bin', None, loader=True)]
        except AssertionError as e:
            problems.append('installed completion: %s' % e)
    else:
        problems.append('bash-completion is not installed (make deps-deb installs it)')
    problems += run_chat(env, home)
    return problems


def wait_line(proc, regex, timeout, bot=None):
    """Waits for a stdout line of proc matching regex; fails at once if proc
    or the bot (a Popen, the other side) has exited."""
    rx = re.compile(regex)
    deadline = time.monotonic() + timeout
    with proc.cond:
        while not any(rx.search(l) for l in proc.out_lines):
            left = deadline - time.monotonic()
            gone = []
            if not proc.alive():
                gone.append(' (%s exited, status %s)' % (proc.label, proc.p.poll()))
            if bot is not None and bot.poll() is not None:
                gone.append(' (the bot exited, status %s)' % bot.poll())
            if left <= 0 or gone:
                fail('%s: no line matching /%s/%s; seen:\n  %s'
                     % (proc.label, regex, ''.join(gone), '\n  '.join(proc.out_lines)))
            proc.cond.wait(min(left, 0.5))


def send(proc, line):
    proc.p.stdin.write((line + '\n').encode())
    proc.p.stdin.flush()


def start_bot(addr):
    """The bot example as installed, with no PEER=: it must find the program
    the package installs on the PATH.  In a session of its own, as the peer
    it starts outlives a signal to the shell alone."""
    home = tempdir('parley-debbot-')
    err = open(os.path.join(home, 'stderr'), 'w+')
    env = clean_env(HOME=home, PATH='/usr/bin:/bin')
    env.pop('PEER', None)
    bot = subprocess.Popen(['/usr/share/doc/parley/examples/parley-bot.sh', '--user', 'bot',
                            '--tracker', addr, '--home', home], cwd=home, env=env,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                           start_new_session=True)

    def stop():
        if bot.poll() is None:
            os.killpg(bot.pid, signal.SIGKILL)
        bot.wait(10)
        err.close()
    on_cleanup(stop)
    return bot, err


def run_chat(env, home):
    """A tracker and `parley --user alice` from the packages, and the bot
    example answering alice."""
    problems = []
    trk = Proc('installed parley-tracker', ['/usr/bin/parley-tracker', '--listen', '127.0.0.1:0',
                                            '--db', os.path.join(home, 'tracker.db')],
               cwd=home, stdin=False, env={'HOME': home})
    m, _ = trk.wait_stderr(LISTEN_RE, timeout=15)
    addr = m.group(1)
    bot = err = None
    if shutil.which('jq'):
        bot, err = start_bot(addr)
    else:
        problems.append('jq is not installed (make deps installs it); the bot example not run')
    alice_home = os.path.join(home, 'alice')
    os.mkdir(alice_home)
    alice = Proc('installed parley --user alice', ['/usr/bin/parley', '--user', 'alice',
                                                   '--tracker', addr, '--ui', 'line'],
                 cwd=alice_home, env={'HOME': alice_home})
    try:
        wait_line(alice, r'^registered alice \(tracker 127\.0\.0\.1:\d+', 15)
        if bot is not None:
            # The bot may register before or after alice: ask who is online.
            trk.wait_stderr(r'bot registered from', timeout=15)
            send(alice, '/list')
            wait_line(alice, r'^users \d+: (.* )?bot( |$)', 15, bot)
            send(alice, '/msg bot hello from the package')
            wait_line(alice, r'^msg bot: you said: hello from the package$', 20, bot)
        send(alice, '/quit')
        rc = alice.wait_exit(15)
        if rc != 0:
            problems.append('parley --user alice exited %d after /quit' % rc)
    except AssertionError as e:
        problems.append('parley and parley-tracker from the packages: %s' % e)
    if bot is not None:
        if bot.poll() is None:
            os.killpg(bot.pid, signal.SIGTERM)
            try:
                bot.wait(15)
            except subprocess.TimeoutExpired:
                problems.append('the bot example did not stop on SIGTERM')
        else:
            err.seek(0)
            problems.append('the bot example exited by itself (status %s): %s'
                            % (bot.returncode, err.read().strip() or 'nothing on stderr'))
    trk.signal(signal.SIGTERM)
    if trk.wait_exit(15) != 0:
        problems.append('parley-tracker exited %s after SIGTERM' % trk.p.returncode)
    return problems


if __name__ == '__main__':
    runner.main(globals())

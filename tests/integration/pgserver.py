"""pgserver: a real PostgreSQL server for one test, for the trackers'
shared registry (--registry; tracker/registry_pg.c).

It is the distribution's server (initdb, pg_ctl, createdb and psql from
/usr/lib/postgresql/N/bin, `make deps` installs the postgresql package):
a fresh cluster in a temporary directory, listening on a free loopback
port and on a unix socket in that directory, one role `parley` with trust
authentication, and a database `parley`.  PostgreSQL refuses to run as
root, so as root (CI) every server command runs as the unprivileged
`postgres` user (or `nobody`) through runuser.  The cleanup stops the
server (immediate mode) and removes the directory, whatever the outcome.
Without the binaries the test is skipped loudly (Skip), never passed.
"""
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile

from procs import Skip, fail, on_cleanup


def bindir():
    """The newest /usr/lib/postgresql/N/bin holding initdb and pg_ctl, or Skip."""
    dirs = sorted(glob.glob('/usr/lib/postgresql/*/bin'),
                  key=lambda d: int(d.split('/')[-2]) if d.split('/')[-2].isdigit() else 0)
    for d in reversed(dirs):
        if all(os.access(os.path.join(d, b), os.X_OK) for b in ('initdb', 'pg_ctl', 'psql')):
            return d
    raise Skip('PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb, '
               'pg_ctl, psql): install the postgresql package (`make deps` does); the shared '
               'registry tests need a real server')


def free_port():
    s = socket.socket()
    try:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]
    finally:
        s.close()


class PgServer:
    """A running PostgreSQL cluster.  .url is a libpq URI for the database
    parley as role parley; stop() and start() restart it on the same port
    and data."""

    def __init__(self):
        self.bin = bindir()
        self.as_user = []
        owner = None
        if os.geteuid() == 0:
            for name in ('postgres', 'nobody'):
                try:
                    owner = pwd.getpwnam(name)
                    break
                except KeyError:
                    pass
            if owner is None:
                raise Skip('running as root and no unprivileged user (postgres, nobody) to run '
                           'the PostgreSQL server as')
            self.as_user = ['runuser', '-u', owner.pw_name, '--']
        self.dir = tempfile.mkdtemp(prefix='parley-pg-')
        on_cleanup(lambda: shutil.rmtree(self.dir, ignore_errors=True))
        if owner is not None:
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
        self.data = os.path.join(self.dir, 'data')
        self.log = os.path.join(self.dir, 'server.log')
        self._run('initdb', '-D', self.data, '-U', 'parley', '-A', 'trust', '-E', 'UTF8',
                  '--locale=C', '-N')
        on_cleanup(self._stop_quietly)
        # free_port() only found a port free a moment ago: another test's
        # process may bind it first (a client's ephemeral port, say).  Then
        # the server says so in its log, and another port is tried.
        for attempt in range(5):
            self.port = free_port()
            self.url = 'postgresql://parley@127.0.0.1:%d/parley' % self.port
            if attempt == 4 or self.start(retry=True):
                break
        self._run('createdb', '-h', '127.0.0.1', '-p', str(self.port), '-U', 'parley', 'parley')

    def _run(self, prog, *args, check=True):
        argv = self.as_user + [os.path.join(self.bin, prog)] + list(args)
        p = subprocess.run(argv, cwd=self.dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=60)
        out = p.stdout.decode('utf-8', 'replace')
        self.last_status = p.returncode
        if check and p.returncode != 0:
            fail('%s failed (status %d):\n%s\n%s' % (' '.join(argv), p.returncode, out,
                                                    self.server_log()))
        return out

    def server_log(self):
        try:
            with open(self.log, encoding='utf-8', errors='replace') as f:
                return '---- PostgreSQL log:\n' + f.read()[-4000:]
        except OSError:
            return ''

    def start(self, retry=False):
        """Starts the server on self.port.  With retry, a port another
        process holds returns False instead of failing the test."""
        argv = ['-D', self.data, '-l', self.log, '-w', '-t', '60', '-o',
                '-p %d -c listen_addresses=127.0.0.1 -k %s' % (self.port, self.dir), 'start']
        if not retry:
            self._run('pg_ctl', *argv)
            return True
        before = os.path.getsize(self.log) if os.path.exists(self.log) else 0
        out = self._run('pg_ctl', *argv, check=False)
        if self.last_status == 0:
            return True
        with open(self.log, encoding='utf-8', errors='replace') as f:
            f.seek(before)
            if 'Address already in use' in f.read():
                return False
        fail('pg_ctl start failed:\n%s\n%s' % (out, self.server_log()))

    def stop(self, mode='fast'):
        self._run('pg_ctl', '-D', self.data, '-m', mode, '-w', '-t', '60', 'stop')

    def _stop_quietly(self):
        if os.path.exists(os.path.join(self.data, 'postmaster.pid')):
            self._run('pg_ctl', '-D', self.data, '-m', 'immediate', '-w', 'stop', check=False)

    def psql(self, sql):
        """Runs sql as the operator would; its unaligned output, '|' between columns."""
        return self._run('psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h',
                         '127.0.0.1', '-p', str(self.port), '-U', 'parley', '-d', 'parley',
                         '-c', sql).strip()

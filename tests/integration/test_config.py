"""test_config: the tracker's --config file.  Flags one per line without
dashes, comments and blank lines; the command line overrides the file (and
a --listen there replaces the file's listen lines); a bad line stops the
tracker at start with exit status 2, naming the file and the line."""
import os
import subprocess

import runner
from procs import BUILD, LISTEN_RE, Peer, Proc, fail, on_cleanup, tempdir


def write(d, text, name='tracker.conf'):
    path = os.path.join(d, name)
    with open(path, 'w') as f:
        f.write(text)
    return path


def tracker(argv, d):
    p = Proc('tracker', [os.path.join(BUILD, 'parley-tracker')] + argv, cwd=d, stdin=False)
    on_stop = lambda: (p.signal(15), p.wait_exit(10))
    on_cleanup(on_stop)
    return p


def stop(p):
    p.signal(15)
    if p.wait_exit(10) != 0:
        fail('tracker did not exit 0 on SIGTERM')
    p.wait_output_done()
    p.assert_clean()


def run_bad(argv, d):
    r = subprocess.run([os.path.join(BUILD, 'parley-tracker')] + argv, cwd=d,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
    return r.returncode, r.stderr.decode(errors='replace')


def test_config_file_is_read():
    d = tempdir()
    conf = write(d, '# a tracker for the test\n\n   # indented comment\nlisten 127.0.0.1:0\n'
                    'ttl   42\r\n\tlog-level debug\ndb %s\nmetrics 127.0.0.1:0\n'
                 % os.path.join(d, 'conf.db'))
    p = tracker(['--config', conf], d)
    m, _ = p.wait_stderr(LISTEN_RE, timeout=15)
    p.wait_stderr(r'ready \(database %s, ttl 42 s\)' % os.path.join(d, 'conf.db'), timeout=15)
    p.wait_stderr(r'metrics on 127\.0\.0\.1:\d+', timeout=5)
    alice = Peer('alice', m.group(1))
    alice.registered()
    p.wait_stderr(r' debug ', timeout=5)   # log-level debug took effect
    alice.quit()
    stop(p)


def test_command_line_overrides_config():
    d = tempdir()
    conf = write(d, 'listen 127.0.0.1:1\nlisten 127.0.0.1:2\nttl 42\nlog-level error\n')
    p = tracker(['--config=' + conf, '--ttl', '7', '--listen', '127.0.0.1:0', '--log-level',
                 'info', '--db', os.path.join(d, 'x.db')], d)
    p.wait_stderr(r'ready \(database .*, ttl 7 s\)', timeout=15)
    n = sum(1 for l in p.err_lines if 'listening on' in l)
    if n != 1:
        fail('the command line --listen should replace both listen lines; %d listeners:\n%s'
             % (n, '\n'.join(p.err_lines)))
    stop(p)


def test_bad_lines_name_file_and_line():
    d = tempdir()
    cases = [
        ('listen 127.0.0.1:0\n# ok\n\nttl abc\n', 4, '--ttl abc'),
        ('bogus 1\n', 1, 'bogus'),
        ('listen\n', 1, 'listen'),
        ('ttl 5\n--db x\n', 2, 'without dashes'),
        ('help\n', 1, 'help'),
        ('config other.conf\n', 1, 'nest'),
        ('metrics localhost\n', 1, '--metrics localhost'),
        ('ttl 5 6\n', 1, '--ttl 5 6'),
    ]
    for i, (text, line, what) in enumerate(cases):
        conf = write(d, text, 'bad%d.conf' % i)
        rc, err = run_bad(['--config', conf, '--listen', '127.0.0.1:0'], d)
        if rc != 2:
            fail('config %r: status %d, want 2\n%s' % (text, rc, err))
        if '%s line %d' % (conf, line) not in err or what not in err:
            fail('config %r: want the message to name %s line %d and %r:\n%s'
                 % (text, conf, line, what, err))
    rc, err = run_bad(['--config', os.path.join(d, 'missing.conf')], d)
    if rc != 2 or 'missing.conf' not in err:
        fail('a missing config file: status %d\n%s' % (rc, err))
    conf = write(d, 'ttl 5\n', 'ok.conf')
    rc, err = run_bad(['--config', conf, '--config', conf], d)
    if rc != 2 or '--config' not in err:
        fail('--config twice: status %d\n%s' % (rc, err))


if __name__ == '__main__':
    runner.main(globals())

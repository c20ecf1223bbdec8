"""natlab: a NAT lab of tools/netlab (network namespaces, routers that
masquerade) for one test, with a Tracker and Peers run inside its hosts.
tools/netlab is the shell tool that builds the lab; this is the tests' handle
on it (test_nat.py, tools/bench/dial.py).
"""
import os
import subprocess

from procs import ROOT, SKIP_STATUS, Peer, Skip, Tracker, fail, on_cleanup

NETLAB = os.path.join(ROOT, 'tools', 'netlab')


class NetLab:
    """A tools/netlab lab for one test (building one takes about half a
    second), removed by the cleanup whatever happens.  Raises Skip, with
    netlab's reason, when no lab can be built here (not root, no network
    namespaces, no iptables)."""
    TRK_IP, PUB_IP = '203.0.113.10', '203.0.113.20'
    R1_IP, R2_IP = '203.0.113.1', '203.0.113.2'

    def __init__(self, drop_inbound=False, r1=None, r2=None):
        """r1, r2: router kinds of tools/netlab (pp-reject, pp-drop,
        sym-reject, sym-drop); None leaves netlab's default (pp-reject, or
        pp-drop with drop_inbound)."""
        chk = subprocess.run([NETLAB, 'check'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        why = chk.stdout.decode(errors='replace').strip().replace('\n', '; ')
        if chk.returncode == SKIP_STATUS:
            raise Skip('the NAT lab cannot be built here: %s' % why)
        if chk.returncode != 0:
            fail('tools/netlab check failed (status %d): %s' % (chk.returncode, why))
        args = [NETLAB, 'up'] + (['--drop-inbound'] if drop_inbound else [])
        args += ['--r1', r1] if r1 else []
        args += ['--r2', r2] if r2 else []
        up = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        if up.returncode != 0:
            fail('tools/netlab up failed (status %d): %s' % (up.returncode,
                                                             up.stderr.decode(errors='replace')))
        self.prefix = up.stdout.decode().strip()
        on_cleanup(self.down)

    def exec_prefix(self, host):
        return [NETLAB, 'exec', self.prefix, host, '--']

    def down(self):
        subprocess.run([NETLAB, 'down', self.prefix], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60)

    def tracker(self, extra_args=()):
        return Tracker(listen=self.TRK_IP + ':0', extra_args=extra_args,
                       prefix=self.exec_prefix('trk'))

    def peer(self, name, host, tracker, extra_args=(), **kw):
        return Peer(name, tracker.addr, extra_args=extra_args, prefix=self.exec_prefix(host),
                    label='peer %s@%s' % (name, host), **kw)

"""test_layers: the programs' modules call downwards only.  tools/callgraph.py
reads the built objects of $PARLEY_BUILD (nm) and finds which module refers
to a symbol another defines; a cycle means a module calls back up into one
that calls it, which is what the callback tables (ctl_handler,
inbound_handler, port_accept_cb, link_handler, ...) are for."""
import os
import subprocess

import harness
from harness import fail

TOOL = os.path.join(harness.ROOT, 'tools', 'callgraph.py')


def graph(folder):
    r = subprocess.run(['/usr/bin/python3', TOOL, '--build', harness.BUILD, '--check', folder],
                       capture_output=True, text=True, timeout=60)
    if r.returncode not in (0, 1) or not r.stdout.startswith(folder + ':'):
        fail('callgraph.py failed on %s (%d): %s%s' % (folder, r.returncode, r.stdout, r.stderr))
    return r


def check_no_cycle(folder, expect_edges):
    r = graph(folder)
    if r.returncode:
        fail('%s/ has a call cycle:\n%s' % (folder, r.stdout))
    calls = {}
    for line in r.stdout.splitlines()[1:]:
        if '->' in line:
            left, right = line.split('->', 1)
            calls[left.split()[1]] = [w.strip() for w in right.split(',')]
    for a, b in expect_edges:  # the tool sees real calls: a few known ones must show
        if b not in calls.get(a, []):
            fail('callgraph.py does not show %s -> %s; its reading of the objects broke:\n%s'
                 % (a, b, r.stdout))


def test_peer_layers_one_way():
    check_no_cycle('peer', [('chat', 'dial'), ('dial', 'link'), ('link', 'seal'),
                            ('main', 'chat')])


def test_tracker_layers_one_way():
    check_no_cycle('tracker', [('registry', 'cache'), ('main', 'registry')])


if __name__ == '__main__':
    harness.main(globals())

#!/usr/bin/python3
"""callgraph.py: which module of a program calls which, read off the objects.

A module is one .c file, or the files that share a private header
(NAME_impl.h: the parts of one module split by job).  Module A depends on
module B when an object of A refers to a global symbol (function or data)
that an object of B defines; `nm` tells both.  The layers of a program call
downwards only, so the graph must have no cycle: news travels up through
callback tables, which are data the owner passes in, never a symbol the
lower module names.

    tools/callgraph.py --build build peer          the graph, lowest layer first
    tools/callgraph.py --build build --check peer tracker
                                                   exit 1 and name every cycle

Python standard library only.
"""
import argparse
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sources(folder):
    out = []
    for d, _, files in os.walk(os.path.join(ROOT, folder)):
        out += [os.path.relpath(os.path.join(d, f), ROOT) for f in files if f.endswith('.c')]
    return sorted(out)


def module_of(src):
    with open(os.path.join(ROOT, src), encoding='utf-8') as f:
        m = re.search(r'^#include "(?:[\w/]*/)?(\w+)_impl\.h"', f.read(), re.M)
    if m:
        return os.path.join(os.path.dirname(src), m.group(1))
    return src[:-2]


def symbols(obj):
    """(defined, undefined) global symbols of one object file."""
    out = subprocess.run(['nm', '-g', obj], check=True, capture_output=True, text=True).stdout
    defined, used = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == 'U':
            used.add(parts[1])
        elif len(parts) == 3 and parts[1] in 'TDBRCVWG':
            defined.add(parts[2])
    return defined, used


def graph(build, folder):
    srcs = sources(folder)
    owner, uses, mods = {}, {}, {}
    for src in srcs:
        obj = os.path.join(build, 'obj', src[:-2] + '.o')
        if not os.path.exists(obj):
            sys.exit('callgraph: %s is not built (make first)' % obj)
        mod = module_of(src)
        mods.setdefault(mod, []).append(src)
        defined, used = symbols(obj)
        for s in defined:
            owner[s] = mod
        uses.setdefault(mod, set()).update(used)
    edges = {m: set() for m in mods}
    for m, used in uses.items():
        for s in used:
            o = owner.get(s)
            if o and o != m:
                edges[m].add(o)
    return mods, edges


def cycles(edges):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def layers(edges):
    """Modules by height: 0 calls no other module, n calls only below n."""
    height = {}

    def h(v, seen=()):
        if v in height:
            return height[v]
        if v in seen:
            return 0  # a cycle; reported separately
        height[v] = 1 + max([h(w, seen + (v,)) for w in edges[v]], default=-1)
        return height[v]

    for v in edges:
        h(v)
    return height


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--build', default='build')
    ap.add_argument('--check', action='store_true', help='exit 1 when a folder has a cycle')
    ap.add_argument('folders', nargs='+')
    a = ap.parse_args()
    bad = 0
    for folder in a.folders:
        mods, edges = graph(a.build, folder)
        found = cycles(edges)
        height = layers(edges)
        print('%s: %d modules, %d dependencies, %d cycle%s' % (
            folder, len(mods), sum(len(e) for e in edges.values()), len(found),
            '' if len(found) == 1 else 's'))
        for m in sorted(mods, key=lambda m: (height[m], m)):
            calls = ', '.join(sorted(os.path.relpath(w, folder) for w in edges[m])) or '-'
            print('  %d %-20s -> %s' % (height[m], os.path.relpath(m, folder), calls))
        for c in found:
            print('  CYCLE: ' + ' <-> '.join(os.path.relpath(m, folder) for m in c))
        bad += len(found)
    return 1 if a.check and bad else 0


if __name__ == '__main__':
    sys.exit(main())

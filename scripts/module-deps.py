#!/usr/bin/env python3
"""Module dependency check for one Rust crate: `scripts/module-deps.py crates/<name>/src`.

Reads every `crate::`/`super::`/`self::` path (in `use` items, braces expanded, and inline in
code), resolves it to the module it names, and checks that (a) the crate's top-level modules and
(b) the sibling modules under every folder form no cycle. Comments and string literals are
ignored; `mod x { ... }` blocks are tracked so `super::*` in a test module means its own file.
Prints the edges and a dependency order per level; exits 1 on a cycle.

Why a script and not a crate: `cargo-modules` answers the same question but is a cargo install of
several minutes on every fresh CI machine, for a check this small. Calling an inherent method
defined in another file is not an import and is not counted (Rust has no way to import it)."""
import os, re, sys
from collections import defaultdict

def lex(src):
    """Source without comments and string/char literal contents."""
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith('//', i):
            j = src.find('\n', i); i = n if j < 0 else j; continue
        if src.startswith('/*', i):
            depth, i = 1, i + 2
            while i < n and depth:
                if src.startswith('/*', i): depth += 1; i += 2
                elif src.startswith('*/', i): depth -= 1; i += 2
                else: i += 1
            out.append(' '); continue
        m = re.match(r'b?r(#*)"', src[i:])
        if m and (i == 0 or not (src[i-1].isalnum() or src[i-1] == '_')):
            end = '"' + m.group(1)
            j = src.find(end, i + m.end()); i = j + len(end); out.append('""'); continue
        if c == '"' or src.startswith('b"', i):
            i += 1 if c == '"' else 2
            while i < n and src[i] != '"':
                i += 2 if src[i] == '\\' else 1
            i += 1; out.append('""'); continue
        m = re.match(r"b?'(\\(x..|u\{[0-9a-fA-F]+\}|.)|[^\\'])'", src[i:])
        if m:
            i += m.end(); out.append("' '"); continue
        out.append(c); i += 1
    return ''.join(out)

def expand_use(tree):
    """`a::{b, c::{d, self}}` → ['a::b', 'a::c::d', 'a::c']."""
    tree = re.sub(r'\s+', '', tree)
    def split_top(s):
        parts, depth, cur = [], 0, ''
        for ch in s:
            if ch == ',' and depth == 0: parts.append(cur); cur = ''; continue
            depth += ch == '{'; depth -= ch == '}'; cur += ch
        if cur: parts.append(cur)
        return parts
    def rec(prefix, s):
        s = re.sub(r'\bas\w+$', '', s)
        k = s.find('{')
        if k < 0:
            p = prefix + s
            if p.endswith('::self'): p = p[:-6]
            if p.endswith('::*'): p = p[:-3]
            return [p]
        head, body = s[:k], s[k+1:s.rfind('}')]
        res = []
        for part in split_top(body): res += rec(prefix + head, part)
        return res
    return rec('', tree)

def module_of(rel):
    parts = rel[:-3].split('/')
    if parts[-1] in ('lib', 'main', 'mod'): parts = parts[:-1]
    return tuple(parts)

def analyse(root, files):
    mods = {module_of(os.path.relpath(f, root)): f for f in files}
    known = set(mods)
    # Re-exports: `pub(crate) use child::{Item, ...}` in a module makes `module::Item` name an item
    # of `child`, so a path through the re-export counts as a use of the child.
    reexports = {}
    for mod, path in mods.items():
        text = lex(open(path).read())
        for m in re.finditer(r'\bpub(?:\([^)]*\))?\s+use\s+([^;]+);', text):
            for p in expand_use(m.group(1)):
                segs = p.split('::')
                if segs[0] == 'self': segs = segs[1:]
                if len(segs) >= 2 and mod + (segs[0],) in known:
                    reexports[(mod, segs[-1])] = mod + (segs[0],)
    edges = set()
    for mod, path in mods.items():
        text = lex(open(path).read())
        # inline module blocks: (start, end, name)
        blocks = []
        for m in re.finditer(r'\bmod\s+(\w+)\s*\{', text):
            depth, j = 1, m.end()
            while depth and j < len(text):
                depth += text[j] == '{'; depth -= text[j] == '}'; j += 1
            blocks.append((m.start(), j, m.group(1)))
        def scope(pos):
            return mod + tuple(name for s, e, name in blocks if s <= pos < e)
        refs = []
        for m in re.finditer(r'\buse\s+([^;]+);', text):
            for p in expand_use(m.group(1)):
                refs.append((m.start(), p))
        used = [(m.start(), m.end()) for m in re.finditer(r'\buse\s+([^;]+);', text)]
        for m in re.finditer(r'(?<![\w:])((?:crate|super|self)(?:::\w+)+)', text):
            if not any(s <= m.start() < e for s, e in used):
                refs.append((m.start(), m.group(1)))
        for pos, p in refs:
            segs = p.split('::')
            here = scope(pos)
            if segs[0] == 'crate': base, segs = (), segs[1:]
            elif segs[0] in ('super', 'self'):
                base = here
                while segs and segs[0] in ('super', 'self'):
                    if segs[0] == 'super': base = base[:-1]
                    segs = segs[1:]
            else: continue
            target = base
            for s in segs:
                if target + (s,) in known: target = target + (s,)
                elif (target, s) in reexports: target = reexports[(target, s)]; break
                else: break
            while target not in known: target = target[:-1]
            if target[:len(mod)] == mod or mod[:len(target)] == target:
                continue  # self, a child, or an ancestor (parent items)
            edges.add((mod, target))
    # lift every edge to the two siblings under the lowest common ancestor
    levels = defaultdict(set)
    for a, b in edges:
        k = 0
        while k < min(len(a), len(b)) and a[k] == b[k]: k += 1
        levels[a[:k]].add((a[k], b[k]))
    ok = True
    for level in sorted(levels, key=lambda l: (len(l), l)):
        graph = defaultdict(set)
        nodes = {m[len(level)] for m in known if len(m) > len(level) and m[:len(level)] == level}
        for a, b in levels[level]: graph[a].add(b)
        # Kahn: dependencies first
        indeg = {n: 0 for n in nodes}
        rev = defaultdict(set)
        for a in graph:
            for b in graph[a]: rev[b].add(a)
        remaining = {n: len(graph[n]) for n in nodes}
        order, ready = [], sorted(n for n in nodes if remaining[n] == 0)
        while ready:
            n = ready.pop(0); order.append(n)
            for a in sorted(rev[n]):
                remaining[a] -= 1
                if remaining[a] == 0: ready.append(a); ready.sort()
        name = '::'.join(level) or 'crate'
        print(f'[{name}]')
        for a, b in sorted(levels[level]): print(f'    {a} -> {b}')
        if len(order) != len(nodes):
            ok = False
            print(f'    CYCLE among: {sorted(set(nodes) - set(order))}')
        else:
            print('    order (dependencies first): ' + ', '.join(order))
    return ok

if __name__ == '__main__':
    src = sys.argv[1]
    allfiles = [os.path.join(d, f) for d, _, fs in os.walk(src) for f in fs if f.endswith('.rs')]
    # The binary is its own crate: main.rs and the modules only it declares.
    bin_decl = set(re.findall(r'^\s*mod\s+(\w+)\s*;', lex(open(os.path.join(src, 'main.rs')).read()), re.M)) if os.path.exists(os.path.join(src, 'main.rs')) else set()
    lib_decl = set(re.findall(r'^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;', lex(open(os.path.join(src, 'lib.rs')).read()), re.M))
    bin_only = bin_decl - lib_decl
    def top(f):
        rel = os.path.relpath(f, src).split('/')[0]
        return rel[:-3] if rel.endswith('.rs') else rel
    lib_files = [f for f in allfiles if os.path.basename(f) != 'main.rs' and top(f) not in bin_only]
    bin_files = [f for f in allfiles if os.path.relpath(f, src) == 'main.rs' or top(f) in bin_only]
    print('== library'); ok = analyse(src, [f for f in lib_files])
    print('== binary'); ok = analyse(src, [f for f in bin_files]) and ok
    print('no cycles' if ok else 'CYCLES FOUND'); sys.exit(0 if ok else 1)

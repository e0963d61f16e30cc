#!/usr/bin/env python3
"""Fails if a crate's modules depend on each other in a cycle.

Reads every module file of each crate (`src/**/*.rs`; `foo/mod.rs` is module
`foo`, `foo/bar.rs` is `foo::bar`) and takes an edge a -> b wherever module a
names a path `crate::...` (directly or inside a `use crate::{...}` group)
whose longest prefix that is a module is b. `lib.rs` and `main.rs` are roots
and may use anything.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def module_name(src, path):
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "mod":
        parts.pop()
    return "::".join(parts)


def expand(prefix, group):
    """Every path in a `use` group, nested groups included."""
    items, depth, token = [], 0, ""
    for ch in group + ",":
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            token = token.strip()
            if token:
                inner = re.match(r"^([\w:]*?)::\{(.*)\}$", token, flags=re.S)
                if inner:
                    items += expand(prefix + inner.group(1) + "::", inner.group(2))
                else:
                    items.append(prefix + token.split(" as ")[0].strip())
            token = ""
        else:
            token += ch
    return items


def crate_paths(text):
    """Every crate-relative path named in `text`, without `crate::`."""
    found = set(re.findall(r"crate::((?:\w+::)*\w+)", text))
    for group in re.findall(r"use crate::\{(.*?)\};", text, flags=re.S):
        found.update(expand("", group))
    return found


def target(path, modules):
    parts = path.split("::")
    for n in range(len(parts), 0, -1):
        name = "::".join(parts[:n])
        if name in modules:
            return name
    return None


def cycles(src):
    modules = {}
    for p in src.rglob("*.rs"):
        if p.parent == src and p.stem in ("lib", "main"):
            continue
        modules[module_name(src, p)] = p
    # Comments may name a module without depending on it.
    code = {m: re.sub(r"//[^\n]*", "", p.read_text()) for m, p in modules.items()}
    edges = {}
    for m in modules:
        named = {target(path, modules) for path in crate_paths(code[m])}
        edges[m] = {n for n in named if n and n != m}
    found, state = [], {}

    def visit(m, path):
        state[m] = "open"
        for n in sorted(edges[m]):
            if state.get(n) == "open":
                found.append(path[path.index(n):] + [n])
            elif n not in state:
                visit(n, path + [n])
        state[m] = "done"

    for m in sorted(modules):
        if m not in state:
            visit(m, [m])
    return found


bad = False
for cargo in sorted(ROOT.glob("**/Cargo.toml")):
    src = cargo.parent / "src"
    if "target" in cargo.parts or not src.is_dir():
        continue
    for cycle in cycles(src):
        bad = True
        print(f"{cargo.parent.relative_to(ROOT)}: module cycle {' -> '.join(cycle)}")
if bad:
    sys.exit(1)
print("no module cycles")

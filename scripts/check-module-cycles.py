#!/usr/bin/env python3
"""Fails if a crate's modules depend on each other in a cycle.

Reads each crate's `src/*.rs` (one module per file, as this workspace is
laid out) and takes an edge a -> b wherever module a mentions `crate::b`,
directly or inside a `use crate::{...}` group. `lib.rs` and `main.rs` are
roots and may use anything.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def crate_paths(text):
    """The first segment of every crate-relative path in `text`."""
    found = set(re.findall(r"crate::(\w+)", text))
    for group in re.findall(r"use crate::\{(.*?)\};", text, flags=re.S):
        depth, token = 0, ""
        for ch in group + ",":
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if ch == "," and depth == 0:
                found.add(re.split(r"\W", token.strip(), maxsplit=1)[0])
                token = ""
            else:
                token += ch
    return found


def cycles(src):
    modules = {p.stem: p for p in src.glob("*.rs") if p.stem not in ("lib", "main")}
    # Comments may name a module without depending on it.
    code = {m: re.sub(r"//[^\n]*", "", p.read_text()) for m, p in modules.items()}
    edges = {m: crate_paths(code[m]) & modules.keys() - {m} for m in modules}
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

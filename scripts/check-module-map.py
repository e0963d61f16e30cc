#!/usr/bin/env python3
"""Fails if docs/architecture.md's module map and the source tree disagree.

The map is the first fenced block under the heading `## Module map`: one
module file a line, its path from the repository root, then what it does
(`gateway/src/socket/session.rs  the socket's read loop and lifetime`).
Checked both ways for the crates in ROOTS: every module file in the tree
(crate roots `lib.rs` and `main.rs` aside) is in the map, and every file the
map names exists. Prints each mismatch and exits 1.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
ROOTS = ["gateway/src", "worker/src", "client/src"] + sorted(
    str(p.relative_to(ROOT)) for p in ROOT.glob("shared/*/src")
)


def map_entries(text):
    """(path, line number) for each line of the map; problems for bad lines."""
    lines = text.splitlines()
    try:
        start = lines.index("## Module map")
    except ValueError:
        return [], [f"{DOC.relative_to(ROOT)}: no '## Module map' heading"]
    entries, problems, inside = [], [], False
    for n, line in enumerate(lines[start + 1 :], start + 2):
        if line.startswith("## "):
            break
        if line.startswith("```"):
            if inside:
                return entries, problems
            inside = True
            continue
        if not inside or not line.strip():
            continue
        m = re.match(r"^(\S+\.rs)\s+\S", line)
        if m:
            entries.append((m.group(1), n))
        else:
            problems.append(f"line {n}: not '<path>.rs  <what it does>': {line!r}")
    if not inside:
        problems.append("no fenced block under '## Module map'")
    return entries, problems


def tree_modules():
    found = set()
    for root in ROOTS:
        src = ROOT / root
        for p in src.rglob("*.rs"):
            if p.parent == src and p.stem in ("lib", "main"):
                continue
            found.add(str(p.relative_to(ROOT)))
    return found


def main():
    entries, problems = map_entries(DOC.read_text())
    named = {}
    for path, n in entries:
        if path in named:
            problems.append(f"line {n}: {path} listed twice (first on line {named[path]})")
        named.setdefault(path, n)
    tree = tree_modules()
    for path in sorted(set(named) - tree):
        why = "no such file" if not (ROOT / path).exists() else "outside the checked crates"
        problems.append(f"in the map, not in the tree ({why}): {path} (line {named[path]})")
    for path in sorted(tree - set(named)):
        problems.append(f"in the tree, not in the map: {path}")
    if problems:
        print(f"{DOC.relative_to(ROOT)} module map does not match the tree:")
        for p in problems:
            print(f"  {p}")
        return 1
    print(f"module map: {len(tree)} modules in {len(ROOTS)} crates, each listed once")
    return 0


if __name__ == "__main__":
    sys.exit(main())

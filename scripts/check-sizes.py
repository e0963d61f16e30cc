#!/usr/bin/env python3
"""Keeps the code readable in pieces: no source file over 400 lines and no
function over 80, outside tests and generated code.

Test code is skipped: test crates and folders (`tests/`, `fuzz/`), and from a
file's `#[cfg(test)]` module on. Prints each offender; exits 1 if any.
"""
import pathlib
import re
import sys

MAX_FILE_LINES = 400
MAX_FN_LINES = 80
ROOT = pathlib.Path(__file__).resolve().parent.parent
SKIP_DIRS = {"target", "tests", "fuzz", ".git", "node_modules"}
FN = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)")


def sources():
    for path in sorted(ROOT.rglob("*.rs")):
        parts = set(path.relative_to(ROOT).parts[:-1])
        if parts & SKIP_DIRS or "examples" in parts or "benches" in parts:
            continue
        yield path


def code_lines(path):
    """The file's lines up to its test module, with string and comment
    contents blanked so braces inside them do not count."""
    out = []
    in_block = 0
    for line in path.read_text().splitlines():
        if line.strip() == "#[cfg(test)]":
            break
        cleaned, i, in_str = [], 0, False
        while i < len(line):
            two = line[i : i + 2]
            if in_block:
                if two == "*/":
                    in_block -= 1
                    i += 2
                    continue
                if two == "/*":
                    in_block += 1
                    i += 2
                    continue
                i += 1
                continue
            c = line[i]
            if in_str:
                if c == "\\":
                    i += 2
                    continue
                if c == '"':
                    in_str = False
                i += 1
                continue
            if two == "//":
                break
            if two == "/*":
                in_block += 1
                i += 2
                continue
            if c == '"':
                in_str = True
            elif c == "'" and re.match(r"'(\\.|[^\\'])'", line[i:]):
                i += len(re.match(r"'(\\.|[^\\'])'", line[i:]).group(0))
                continue
            else:
                cleaned.append(c)
            i += 1
        out.append("".join(cleaned))
    return out


def long_functions(lines):
    """(name, first line, length) of each function longer than the limit."""
    found = []
    for start, line in enumerate(lines):
        m = FN.match(line)
        if not m:
            continue
        depth, opened = 0, False
        for end in range(start, len(lines)):
            for c in lines[end]:
                if c == "{":
                    depth += 1
                    opened = True
                elif c == "}":
                    depth -= 1
                elif c == ";" and not opened and depth == 0:
                    break  # a declaration without a body
            else:
                if opened and depth == 0:
                    length = end - start + 1
                    if length > MAX_FN_LINES:
                        found.append((m.group(6), start + 1, length))
                    break
                continue
            break
    return found


def main():
    problems = []
    for path in sources():
        rel = path.relative_to(ROOT)
        total = len(path.read_text().splitlines())
        lines = code_lines(path)
        if len(lines) > MAX_FILE_LINES:
            problems.append(f"{rel}: {len(lines)} lines of code (limit {MAX_FILE_LINES}; {total} with tests)")
        for name, line, length in long_functions(lines):
            problems.append(f"{rel}:{line}: fn {name} is {length} lines (limit {MAX_FN_LINES})")
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} over the size limits")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

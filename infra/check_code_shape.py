"""The code's shape, as issue 61 set it (`make lint`): no non-test Rust file over 800 lines,
and no import cycle between the modules of a crate. (Functions over 80 lines are clippy's
`too_many_lines`, set in clippy.toml and the workspace's lints.)

A module's edges are the `crate::` and `super::` paths of its non-test code (the code before
a file's `#[cfg(test)]` module; test files are skipped), resolved to the modules they name.
An edge from `a::x` to `a::y::z` is an edge between the siblings `x` and `y` of `a`; a cycle
among the children of one module is reported with its members.

    python infra/check_code_shape.py [ROOT]
"""

import pathlib
import re
import sys
from collections import defaultdict

MAX_FILE_LINES = 800
CRATE_DIRS = ["shared/*/src", "functions/*/src", "cli/src", "infra/src", "sim/src", "tests/src"]
TEST_MODULE = re.compile(r"^#\[cfg\(test\)\]\s*\n(?:#\[[^\n]*\]\s*\n)*(?:pub(?:\([a-z]+\))? )?mod \w+", re.M)
PATH = re.compile(r"(?<![\w:])((?:crate|super)(?:::(?:super|\w+))*)")


def is_test_file(path):
    return path.name == "tests.rs" or path.name.endswith("_tests.rs") or "tests" in path.parts[:-1]


def non_test_code(text):
    m = TEST_MODULE.search(text)
    return text[: m.start()] if m else text


def strip_comments(text):
    return "\n".join(line.split("//", 1)[0] for line in text.split("\n"))


def module_of(src, path):
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("lib", "main", "mod"):
        parts = parts[:-1]
    return tuple(parts)


def crate_modules(src):
    files = {}
    for path in sorted(src.rglob("*.rs")):
        if is_test_file(path.relative_to(src)):
            continue
        files[module_of(src, path)] = path
    return files


def resolve(module, is_dir_module, path, modules):
    """The module a path names: its longest prefix that is a module of the crate."""
    parts = path.split("::")
    if parts[0] == "crate":
        base, rest = [], parts[1:]
    else:
        # `super` in a.rs (module a) is the parent; in a/mod.rs too (mod.rs is module a).
        base = list(module)
        rest = parts
        while rest and rest[0] == "super":
            base = base[:-1]
            rest = rest[1:]
    target = tuple(base)
    for part in rest:
        if target + (part,) in modules:
            target = target + (part,)
        else:
            break
    return target


def sibling_edges(modules):
    edges = defaultdict(set)  # parent -> {(child_a, child_b)}
    for module, path in modules.items():
        code = strip_comments(non_test_code(path.read_text()))
        is_dir = path.name == "mod.rs"
        for m in PATH.finditer(code):
            target = resolve(module, is_dir, m.group(1), modules)
            common = 0
            while common < min(len(module), len(target)) and module[common] == target[common]:
                common += 1
            if common == len(module) or common == len(target):
                continue  # a module and its own ancestor or descendant
            edges[module[:common]].add((module[common], target[common]))
    return edges


def cycles(edges):
    """Strongly connected components of more than one node (Tarjan)."""
    graph = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
        graph.setdefault(b, set())
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main(root):
    problems = []
    for pattern in CRATE_DIRS:
        for src in sorted(root.glob(pattern)):
            modules = crate_modules(src)
            for module, path in modules.items():
                lines = non_test_code(path.read_text()).count("\n")
                if lines > MAX_FILE_LINES:
                    problems.append(f"{path.relative_to(root)}: {lines} lines of non-test code (at most {MAX_FILE_LINES})")
            for parent, edges in sorted(sibling_edges(modules).items()):
                for component in cycles(edges):
                    where = "::".join(("crate",) + parent)
                    problems.append(f"{src.relative_to(root)}: import cycle in {where}: {' <-> '.join(component)}")
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()))

#!/usr/bin/env python3
"""Print the import graph of the ``builder`` package: cycles and backward edges.

Every import counts: at the top of a module, inside functions, and under
``TYPE_CHECKING``. Modules are grouped in layers, lowest first; an edge from a
module to one in a higher layer is a backward edge. Exit status 1 when there is
a cycle or a backward edge.

    python3 scripts/imports.py [--edges]
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "builder"

# Layers, lowest first. A module may import from its own layer or lower ones; the
# first prefix that matches a module decides its layer.
LAYERS: list[tuple[str, ...]] = [
    ("builder.errors", "builder.source", "builder.platform", "builder.reference",
     "builder.globs", "builder.replay", "builder.rootfs.paths", "builder.runsettings"),
    ("builder.syntax",),
    ("builder.instructions", "builder.ignore"),
    ("builder.lint", "builder.plan", "builder.context", "builder.preprocess"),
    ("builder.image",),
    ("builder.rootfs", "builder.fetch", "builder.userns"),
    # what steps do to a root file system: run in the sandbox, copy, config edits
    ("builder.executor.users", "builder.executor.config", "builder.executor.output",
     "builder.executor.sandbox", "builder.executor.runspec", "builder.executor.pid1",
     "builder.executor.ocirun", "builder.executor.copier", "builder.executor.mounts",
     "builder.executor.sshagent", "builder.executor.network", "builder.executor.contextview",
     # what RUN's resource and security flags become
     "builder.executor.confinement", "builder.executor.capabilities",
     "builder.executor.seccomp", "builder.executor.cgroups", "builder.executor.ocihooks"),
    ("builder.registry",),
    ("builder.store",),
    ("builder.cache",),
    ("builder.executor",),
    ("builder.api", "builder.commands", "builder.cli", "builder.__main__"),
    ("builder",),  # the package itself: its __init__ re-exports the API
]


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int:
    for rank, prefixes in enumerate(LAYERS):
        if any(module == p or (p != "builder" and module.startswith(p + "."))
               for p in prefixes):
            return rank
    raise SystemExit(f"imports.py: {module} is in no layer; add it to LAYERS")


def imports_of(path: Path, module: str, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            # "from builder.x import y": y itself when it is a module, else builder.x
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                     for a in node.names]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for dep in sorted(graph.get(node, ())):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def main(argv: list[str]) -> int:
    files = sorted(PACKAGE.rglob("*.py"))
    known = {module_name(f) for f in files}
    graph = {module_name(f): imports_of(f, module_name(f), known) for f in files}
    # a package's __init__ importing its own submodules is not a dependency between layers
    backward = sorted((a, b) for a, deps in graph.items() for b in deps
                      if layer_of(b) > layer_of(a) and not b.startswith(a + "."))
    found = cycles(graph)
    edges = sum(len(d) for d in graph.values())
    print(f"{len(graph)} modules, {edges} import edges "
          "(top-level, in-function and TYPE_CHECKING imports)")
    print(f"cycles: {len(found)}")
    for component in found:
        print("  " + " <-> ".join(component))
    print(f"backward edges: {len(backward)}")
    for a, b in backward:
        print(f"  {a} -> {b}")
    if "--edges" in argv:
        for a in sorted(graph):
            for b in sorted(graph[a]):
                print(f"{a} -> {b}")
    return 1 if found or backward else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

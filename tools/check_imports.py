"""Check lawfit's layering from the source: no import cycle among its modules, no private name
(``_x``) imported from another module, and no import of ``runners`` from the library: only the
command line (``lawfit.cli``: ``lawfit run``, ``lawfit suggest --emit-toml``) may call into the
runners, inside its command functions.

    python tools/check_imports.py [ROOT]

ROOT is the repository (default: this file's parent's parent). Prints one line per problem and
exits 1 if there is any, 0 otherwise. Static: it reads the source with :mod:`ast` and imports
nothing. Every import counts, also those inside functions (an import deferred for a fast start is
still a dependency), except those under ``if TYPE_CHECKING:``.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = "lawfit"
# the only part of lawfit that may import runners: the command line, the application's shell
RUNNERS_ALLOWED_IN = "lawfit.cli"


def modules(root: Path) -> dict[str, Path]:
    """Module name -> file, for every .py file of the package under ``root``."""
    out = {}
    for f in sorted((root / PACKAGE).rglob("*.py")):
        rel = f.relative_to(root).with_suffix("")
        parts = rel.parts[:-1] if rel.parts[-1] == "__init__" else rel.parts
        out[".".join(parts)] = f
    return out


def _type_checking_blocks(tree: ast.AST) -> set[int]:
    """ids of the nodes inside ``if TYPE_CHECKING:`` blocks."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            t = node.test
            name = t.id if isinstance(t, ast.Name) else t.attr if isinstance(t, ast.Attribute) else None
            if name == "TYPE_CHECKING":
                for sub in node.body:
                    skip.update(id(n) for n in ast.walk(sub))
    return skip


def imports(name: str, path: Path) -> list[tuple[int, str, str | None]]:
    """(line, module imported, name imported from it or None) for each import in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = _type_checking_blocks(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out += [(node.lineno, mod, a.name) for a in node.names]
    return out


def check(root: Path) -> list[str]:
    """Every layering problem of the package under ``root``, one line each."""
    mods = modules(root)
    problems = []
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, f in mods.items():
        where = f.relative_to(root)
        for line, mod, name in imports(m, f):
            top = mod.split(".")[0]
            if top == "runners" and not (m == RUNNERS_ALLOWED_IN or m.startswith(RUNNERS_ALLOWED_IN + ".")):
                problems.append(f"{where}:{line}: {m} imports {mod}: lawfit's library never imports runners")
            if top != PACKAGE:
                continue
            target = f"{mod}.{name}" if name and f"{mod}.{name}" in mods else mod
            if name and name.startswith("_") and not name.startswith("__") and target == mod:
                problems.append(f"{where}:{line}: {m} imports the private name {name} from {mod}")
            if target in mods and target != m and not (m.startswith(target + ".")
                                                        and mods[target].name == "__init__.py"):
                edges[m].add(target)
    for cycle in cycles(edges):
        problems.append("import cycle: " + " -> ".join(cycle + [cycle[0]]))
    return list(dict.fromkeys(problems))


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each as a list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    root = Path(argv[0]) if argv else Path(__file__).resolve().parents[1]
    problems = check(root)
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""The house rules of ``src/mis`` that a reader cannot see from one file: data flows one
way through the pipeline stages, no two modules import each other (at module level or
inside a function), and only :mod:`mis.settings` reads the environment.

The import graph is read from the source (``ast``), so a function-level import counts as
much as a top-level one: hiding a circle inside a function does not make it go away.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "mis"
#: The pipeline stages, upstream first: a stage may import those before it, never after.
STAGES = ("catalogue", "imagery", "segment", "grains", "ingest", "api")
#: Circles kept on purpose, each with its reason.
ALLOWED_CIRCLES = {
    # listing a store's label images upgrades a store of the first layout on the way
    # (the upgrade writes through layout's names); reading never sees the old layout
    frozenset({"mis.imagery.layout", "mis.imagery.upgrade"}),
}


def _modules() -> dict[str, Path]:
    out = {}
    for f in SRC.rglob("*.py"):
        name = ".".join(("mis", *f.relative_to(SRC).with_suffix("").parts)).removesuffix(".__init__")
        out[name] = f
    return out


def _is_main_block(node: ast.AST) -> bool:
    """``if __name__ == "__main__":`` (runs only as a script, never on import)."""
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__")


def _imports(path: Path, known: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = {id(n) for top in tree.body if _is_main_block(top) for n in ast.walk(top)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        found.update(n for n in names if n in known)
    return found


def _graph() -> dict[str, set[str]]:
    known = _modules()
    return {m: _imports(f, known) - {m} for m, f in known.items()}


def _circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _stage(module: str) -> int | None:
    parts = module.split(".")
    return STAGES.index(parts[1]) if len(parts) > 1 and parts[1] in STAGES else None


def test_no_module_imports_another_that_imports_it_back():
    circles = [c for c in _circles(_graph()) if frozenset(c) not in ALLOWED_CIRCLES]
    assert not circles, f"import circles: {[sorted(c) for c in circles]}"


def test_the_named_circles_of_the_house_issue_stay_gone():
    graph = _graph()
    for a, b in (("mis.catalogue.postgres", "mis.catalogue.locate"), ("mis.api.provider", "mis.api.writes"),
                 ("mis.segment.cnn", "mis.segment.filters")):
        assert not (a in graph.get(b, set()) and b in graph.get(a, set())), (a, b)


def test_data_flows_one_way_through_the_stages():
    upward = []
    for module, targets in _graph().items():
        here = _stage(module)
        if here is None:
            continue
        upward += [f"{module} -> {t}" for t in targets if (there := _stage(t)) is not None and there > here]
    assert not upward, "imports against the flow " + " → ".join(STAGES) + ":\n" + "\n".join(sorted(upward))


def test_only_the_settings_module_reads_the_environment():
    readers = []
    for module, path in _modules().items():
        if module == "mis.settings":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr == "getenv":
                readers.append(f"{module}:{node.lineno}")
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                  and isinstance(node.func.value, ast.Attribute) and node.func.value.attr == "environ"):
                # pygeoapi's own two variables, saved and put back around its import
                if module != "mis.api.app":
                    readers.append(f"{module}:{node.lineno}")
    assert not readers, f"environment read outside mis.settings: {readers}"

"""The package layout holds: no import cycle, exec/ and analysis/ stand apart on store/, only
store/ knows store names, one module names the status literals, modules stay small."""

from __future__ import annotations

import ast
from pathlib import Path

from mosaic.config import _parse_python

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "mosaic"
#: folder and file names of a store: only mosaic/store/ may contain them
STORE_NAMES = ("_control", "_state", "sweep=", ".parquet")
MAX_LINES = 500


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _parse(path: Path) -> ast.Module:
    """``ast.parse`` through config's retry: CPython 3.11's ast keeps one recursion counter for
    all threads (gh-106905), and the session's in-process Dask scheduler has threads of its own."""
    return _parse_python(path.read_text(encoding="utf-8"), str(path))


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "examples" not in p.parts}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every mosaic module ``name`` imports, at the top or inside a function."""
    tree = _parse(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    graph = {name: _imports(name, path, known) for name, path in modules.items()}
    # importing a.b.c runs a/__init__ and a/b/__init__ first: packages are not edges of their own
    return {name: {t for t in targets if not name.startswith(t + ".")} for name, targets in graph.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _string_constants(path: Path) -> list[tuple[int, str]]:
    """String literals of a module, docstrings left out (they may name what they describe)."""
    tree = _parse(path)
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_the_checker_sees_imports_inside_functions_and_cycles(tmp_path: Path) -> None:
    # a checker that cannot fail proves nothing: feed it an import hidden in a function, and a cycle
    probe = tmp_path / "a.py"
    probe.write_text("def f():\n    from mosaic.b import x\n", encoding="utf-8")
    found = _imports("mosaic.a", probe, {"mosaic.a", "mosaic.b"})
    assert found == {"mosaic.b"}
    assert _cycle({"mosaic.a": {"mosaic.b"}, "mosaic.b": {"mosaic.a"}}) == ["mosaic.a", "mosaic.b", "mosaic.a"]


def test_no_import_cycle_counting_imports_inside_functions() -> None:
    graph = _graph()
    assert "mosaic.store.reader" in graph and graph["mosaic.exec.driver.commands"]
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph) or [])}"


def test_exec_and_analysis_never_import_each_other() -> None:
    for name, targets in _graph().items():
        for side, other in (("mosaic.exec", "mosaic.analysis"), ("mosaic.analysis", "mosaic.exec")):
            if name.startswith(side):
                assert not [t for t in targets if t.startswith(other)], f"{name} imports {other}"


def test_store_does_not_stand_on_exec_or_analysis() -> None:
    for name, targets in _graph().items():
        if name.startswith("mosaic.store"):
            assert not [t for t in targets if t.startswith(("mosaic.exec", "mosaic.analysis"))], name


def test_only_the_store_names_store_files_and_folders() -> None:
    for name, path in _modules().items():
        if name.startswith("mosaic.store"):
            continue
        for line, text in _string_constants(path):
            for word in STORE_NAMES:
                assert word not in text, f"{path.relative_to(ROOT)}:{line} names {word!r}; ask mosaic.store.layout"


def test_the_status_literals_live_in_one_module() -> None:
    holders = {name for name, path in _modules().items()
               for _, text in _string_constants(path) if "system failure" in text}
    assert holders == {"mosaic.store.status"}


def test_no_module_over_500_lines() -> None:
    long = {name: n for name, path in _modules().items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"split these modules: {long}"

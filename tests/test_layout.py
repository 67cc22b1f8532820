"""The package layout holds: no import cycle, exec/ and analysis/ stand apart on store/, only
store/ knows store names, one module names the status literals, modules stay small.

And exec/'s four packages keep to their docstrings: the driver side never loads torch, only
the cluster package imports ``distributed``, the wire package stands on neither side, the
worker's preload names modules that exist; folders and functions stay small; statuses are
compared through ``RunStatus``, never as literals."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mosaic.config import _parse_python
from mosaic.store.status import RunStatus

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "mosaic"
#: folder and file names of a store: only mosaic/store/ may contain them
STORE_NAMES = ("_control", "_state", "sweep=", ".parquet")
MAX_LINES = 500
#: at most this many modules (``__init__.py`` included) in one folder of mosaic/
MAX_MODULES_PER_FOLDER = 12
#: at most this many lines in one function or method, its docstring included
MAX_FUNCTION_LINES = 80
#: the packages of exec/ whose modules the driver imports: none may load torch
DRIVER_SIDE = ("driver", "wire", "cluster")
#: the stored text of each run status: only mosaic.store.status may name them
STATUS_VALUES = frozenset(s.value for s in RunStatus)


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


def _every_module() -> dict[str, Path]:
    """Every module of mosaic/, the shipped examples included."""
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _import_sites(name: str, path: Path) -> list[tuple[str, bool]]:
    """Every dotted name module ``name`` imports (relative imports made absolute; ``from a
    import b`` gives ``a.b`` and ``a``), each with True when the import is inside a function."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    sites: list[tuple[str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.Import):
            sites.extend((alias.name, in_function) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            sites.extend((target, in_function) for target in [f"{base}.{a.name}" for a in node.names] + [base])
        inside = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for child in ast.iter_child_nodes(node):
            visit(child, inside)

    visit(_parse(path), False)
    return sites


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every mosaic module ``name`` imports, at the top or inside a function."""
    found: set[str] = set()
    for target, _ in _import_sites(name, path):
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)
    return found


def _roots(name: str, path: Path) -> set[str]:
    """The top-level packages (``torch``, ``distributed``...) module ``name`` imports, at any level."""
    return {target.split(".")[0] for target, _ in _import_sites(name, path)}


def _importers(package: str) -> set[str]:
    """The mosaic modules that import the third-party ``package``, at the top or inside a function."""
    return {name for name, path in _modules().items() if package in _roots(name, path)}


def _in_package(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


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


# -- exec/'s four packages ---------------------------------------------------------------------
def _loads_torch(module: str) -> tuple[str, str]:
    """Import ``module`` in a fresh interpreter: ``"True"``/``"False"`` (torch loaded), or the error."""
    code = f"import importlib, sys; importlib.import_module({module!r}); print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    return module, done.stdout.strip() if done.returncode == 0 else f"failed: {done.stderr.strip()[-400:]}"


def test_the_driver_side_never_loads_torch() -> None:
    # every module of the driver, wire and cluster packages, each alone in a fresh interpreter
    modules = [_module_name(p) for side in DRIVER_SIDE for p in sorted((PACKAGE / "exec" / side).rglob("*.py"))]
    assert "mosaic.exec.driver.sweep" in modules and "mosaic.exec.cluster.connect" in modules
    probe = "mosaic.exec.training.run"  # the checker must see torch where it is loaded
    with ThreadPoolExecutor(2) as pool:
        found = dict(pool.map(_loads_torch, [probe, "mosaic", "mosaic.cli", *modules]))
    assert found.pop(probe) == "True", "the checker does not see torch loaded"
    assert {m: r for m, r in found.items() if r != "False"} == {}


def test_the_import_checker_sees_third_party_imports_at_any_level(tmp_path: Path) -> None:
    probe = tmp_path / "a.py"
    probe.write_text("import os\nfrom torch import nn\n\nclass C:\n    import tornado.web\n\n"
                     "    def m(self):\n        import distributed.utils\n", encoding="utf-8")
    assert _roots("mosaic.a", probe) == {"os", "torch", "tornado", "distributed"}
    sites = dict(_import_sites("mosaic.a", probe))
    assert (sites["torch.nn"], sites["tornado.web"], sites["distributed.utils"]) == (False, False, True)


def test_only_the_cluster_package_imports_distributed_and_tornado() -> None:
    distributed = _importers("distributed")
    assert "mosaic.exec.cluster.connect" in distributed  # the checker sees it where it is
    assert {m for m in distributed if not _in_package(m, "mosaic.exec.cluster")} == set()
    assert _importers("tornado") == {"mosaic.exec.cluster.page"}


def test_the_wire_package_imports_neither_torch_nor_distributed() -> None:
    wire = {name: path for name, path in _modules().items() if _in_package(name, "mosaic.exec.wire")}
    assert "mosaic.exec.wire.events" in wire
    assert {name: found for name, path in wire.items() if (found := _roots(name, path) & {"torch", "distributed"})} == {}


@pytest.mark.parametrize(("package", "forbidden"), [
    ("mosaic.exec.wire", ("mosaic.exec.driver", "mosaic.exec.cluster", "mosaic.exec.training")),
    ("mosaic.exec.training", ("mosaic.exec.driver", "mosaic.exec.cluster")),
    ("mosaic.exec.driver", ("mosaic.exec.training",)),
    ("mosaic.exec.cluster", ("mosaic.exec.driver",)),
])
def test_each_exec_package_keeps_off_the_packages_its_docstring_forbids(package: str, forbidden: tuple[str, ...]) -> None:
    graph = _graph()
    assert any(_in_package(name, package) for name in graph)
    edges = {f"{name} -> {target}" for name, targets in graph.items() if _in_package(name, package)
             for target in targets if any(_in_package(target, f) for f in forbidden)}
    assert edges == set()


def test_the_cluster_package_loads_training_only_inside_functions_of_two_modules() -> None:
    # the driver imports the cluster package: an import of training at the top of a cluster
    # module would load torch in the driver; inside a function it runs on a worker only
    sites = {name: [(target, inside) for target, inside in _import_sites(name, path)
                    if _in_package(target, "mosaic.exec.training")]
             for name, path in _modules().items() if _in_package(name, "mosaic.exec.cluster")}
    sites = {name: found for name, found in sites.items() if found}
    assert set(sites) == {"mosaic.exec.cluster.entry", "mosaic.exec.cluster.plugins"}
    assert {name: [t for t, inside in found if not inside] for name, found in sites.items()} == {
        "mosaic.exec.cluster.entry": [], "mosaic.exec.cluster.plugins": []}


def test_the_worker_preload_names_modules_that_import() -> None:
    from mosaic.exec.cluster.worker_start import PRELOAD

    assert "mosaic.exec.training.run" in PRELOAD  # the worker's training code, loaded once in the fork server
    names = [*PRELOAD, "mosaic.exec.no_such_module"]  # the last proves a missing module is reported
    code = ("import importlib, sys\nfor name in sys.argv[1:]:\n    try:\n        importlib.import_module(name)\n"
            "    except Exception as exc:\n        print(name, type(exc).__name__)\n")
    done = subprocess.run([sys.executable, "-c", code, *names], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["mosaic.exec.no_such_module", "ModuleNotFoundError"]


# -- small folders and functions ---------------------------------------------------------------
def _crowded(root: Path, limit: int) -> dict[str, int]:
    """The folders under ``root`` that hold more than ``limit`` modules."""
    counts = Counter(path.parent for path in root.rglob("*.py"))
    return {str(folder.relative_to(root)): n for folder, n in counts.items() if n > limit}


def test_the_folder_checker_counts_modules(tmp_path: Path) -> None:
    (tmp_path / "big").mkdir()
    for i in range(3):
        (tmp_path / "big" / f"m{i}.py").touch()
    (tmp_path / "big" / "notes.txt").touch()
    (tmp_path / "small.py").touch()
    assert _crowded(tmp_path, 2) == {"big": 3}


def test_no_folder_over_12_modules() -> None:
    # every folder counts: mosaic/examples and mosaic/lib are small and hold code users import
    assert len(_crowded(PACKAGE, 0)) >= 5  # the checker sees the folders
    assert _crowded(PACKAGE, MAX_MODULES_PER_FOLDER) == {}, "split these folders"


def _long_functions(name: str, path: Path, limit: int) -> dict[str, int]:
    """``module.qualified_name: lines`` of every function or method of ``path`` over ``limit`` lines."""
    found: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                qualified = f"{prefix}.{child.name}"
                if not isinstance(child, ast.ClassDef) and (lines := (child.end_lineno or 0) - child.lineno + 1) > limit:
                    found[qualified] = lines
                visit(child, qualified)
            else:
                visit(child, prefix)

    visit(_parse(path), name)
    return found


def test_the_function_checker_measures_functions_and_methods(tmp_path: Path) -> None:
    probe = tmp_path / "a.py"
    lines = ["def short():", "    pass", "", "class C:", "    async def long(self):", '        """Its docstring counts."""']
    lines += ["        x = 1"] * 77 + ["        def inner():"] + ["            y = 2"] * 80
    probe.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert _long_functions("mosaic.a", probe, 80) == {"mosaic.a.C.long": 160, "mosaic.a.C.long.inner": 81}
    assert _long_functions("mosaic.a", probe, 160) == {}


def test_no_function_over_80_lines() -> None:
    found = {f: n for name, path in _every_module().items() for f, n in _long_functions(name, path, MAX_FUNCTION_LINES).items()}
    assert found == {}, "split these functions"


# -- statuses through RunStatus ----------------------------------------------------------------
_SQL = ("SELECT", "WHERE")


def _status_literals(node: ast.AST, with_in: bool) -> list[str]:
    """The status texts ``node`` is, or (``with_in``) holds as a tuple, list or set."""
    if isinstance(node, ast.Constant) and node.value in STATUS_VALUES:
        return [node.value]
    if with_in and isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in STATUS_VALUES]
    return []


def _status_comparisons(path: Path) -> list[str]:
    """``line: source`` of each comparison of a status (its source names ``status``) with a
    status literal (``==``, ``!=``, ``in``, ``not in``); SQL text naming a status is exempt."""
    text = path.read_text(encoding="utf-8")
    found: list[str] = []
    for node in ast.walk(_parse(path)):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        for op, left, right in zip(node.ops, operands[:-1], operands[1:], strict=True):
            if not isinstance(op, ast.Eq | ast.NotEq | ast.In | ast.NotIn):
                continue
            with_in = isinstance(op, ast.In | ast.NotIn)
            for status, other in ((left, right), (right, left)):
                source = ast.get_source_segment(text, status) or ""
                sql = isinstance(status, ast.Constant) and isinstance(status.value, str) and any(w in status.value.upper() for w in _SQL)
                if "status" in source.lower() and not sql and _status_literals(other, with_in):
                    found.append(f"{node.lineno}: {ast.get_source_segment(text, node)}")
    return found


def test_the_status_checker_finds_literal_comparisons(tmp_path: Path) -> None:
    probe = tmp_path / "a.py"
    probe.write_text(
        'if run.status == "done": pass\n'  # 1: found
        'if row["status"] in ("error", "system failure"): pass\n'  # 2: found
        'if "paused" != status_of(r): pass\n'  # 3: found
        'ok = state == "error"\n'  # not a status
        'ok = status == RunStatus.DONE\n'  # through RunStatus
        'ok = "SELECT run_id FROM runs WHERE status" == "done"\n'  # SQL text
        'ok = status in ["finished", "queued"]\n',  # not run statuses
        encoding="utf-8")
    assert [line.split(":")[0] for line in _status_comparisons(probe)] == ["1", "2", "3"]


def test_statuses_are_compared_through_run_status() -> None:
    found = {name: hits for name, path in _every_module().items()
             if name != "mosaic.store.status" and (hits := _status_comparisons(path))}
    assert found == {}, "compare with RunStatus members (mosaic.store.status), not their text"

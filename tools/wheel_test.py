"""Does the wheel work on its own? (`make wheel-test`)

1. `python -m build`: the sdist, then the wheel built from that sdist (so the sdist is complete);
2. the wheel holds the schemas, the tutorial and the scheduler plugin (the /mosaic page), and
   no tests; the sdist holds the licence and the schemas;
3. a fresh venv outside the checkout gets the wheel with `pip install --no-deps`; the
   dependencies come from this project's venv through a `.pth` line naming its site-packages.
   A plain path line only appends that folder to sys.path: the `.pth` files inside it (the
   editable install's, which points at the checkout) are not processed, so the checkout's
   `mosaic` cannot be imported there;
4. from a temporary folder: `mosaic init`, `mosaic run` (2 epochs), `mosaic query`,
   `mosaic report`, and `mosaic.__file__` (with the schemas and the tutorial it reads) lies in
   the fresh venv, no sys.path entry is the checkout.

Installing torch into the fresh venv would take minutes and test pip, not Mosaic.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IN_WHEEL = (
    "mosaic/__init__.py",
    "mosaic/cli.py",
    "mosaic/schemas/config.json",
    "mosaic/schemas/tables.json",
    "mosaic/schemas/torch_names.json",
    "mosaic/examples/tutorial/config.ini",
    "mosaic/examples/tutorial/dataset.py",
    "mosaic/examples/tutorial/mlp.py",
)
IN_SDIST = ("LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml", "schemas/config.json", "mosaic/__init__.py")
# run inside the fresh venv: where everything the commands use comes from
WHERE = """
import sys, mosaic, mosaic.schemas, mosaic.examples, mosaic.cli
from importlib import metadata
print(mosaic.__file__)
print(mosaic.schemas.schema_dir())
print(mosaic.examples.__file__)
print(mosaic.cli.__file__)
print(metadata.version("mosaic-sweep"), mosaic.__version__)
print("\\n".join(sys.path))
"""


def step(text: str) -> None:
    print(f"wheel-test: {text}", flush=True)


def fail(text: str) -> None:
    sys.exit(f"wheel-test: FAILED: {text}")


def sh(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        fail(f"{' '.join(map(str, args))} exited {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done.stdout


def build(dist: Path) -> tuple[Path, Path]:
    step("python -m build (sdist, then the wheel from it)")
    sh(sys.executable, "-m", "build", "--outdir", dist, ROOT)
    wheels, sdists = list(dist.glob("*.whl")), list(dist.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        fail(f"expected one wheel and one sdist in {dist}, found {wheels + sdists}")
    return wheels[0], sdists[0]


def _tracked_package_files() -> list[str]:
    """The package's files under version control (none when this is no git checkout)."""
    done = subprocess.run(["git", "ls-files", "mosaic"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.split() if done.returncode == 0 else []


def check_contents(wheel: Path, sdist: Path) -> None:
    archive = zipfile.ZipFile(wheel)
    names = set(archive.namelist())
    missing = [name for name in (*IN_WHEEL, *_tracked_package_files()) if name not in names]
    if missing:
        fail(f"{wheel.name} lacks {missing}")
    # the scheduler plugin serving the /mosaic page, wherever the package keeps it
    plugins = [name for name in names if name.endswith(".py") and b"SchedulerPlugin)" in archive.read(name)]
    if not plugins:
        fail(f"{wheel.name} holds no scheduler plugin (a SchedulerPlugin subclass)")
    if any(name.startswith(("tests/", "bench/", "docs/")) for name in names):
        fail(f"{wheel.name} carries tests, benchmarks or docs")
    with tarfile.open(sdist) as archive:
        top = archive.getnames()[0].split("/")[0]
        members = {name.removeprefix(top + "/") for name in archive.getnames()}
    missing = [name for name in IN_SDIST if name not in members]
    if missing:
        fail(f"{sdist.name} lacks {missing}")
    step(f"{wheel.name}: {len(names)} files; schemas, tutorial and scheduler plugin ({', '.join(plugins)}) inside")


def fresh_venv(venv: Path, wheel: Path) -> Path:
    step(f"fresh venv {venv}")
    sh(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    site = Path(sh(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    (site / "_project_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    before = subprocess.run([python, "-c", "import mosaic.cli"], cwd=venv, capture_output=True)
    if before.returncode == 0:
        fail("mosaic is importable in the fresh venv before the wheel is installed (the checkout leaks in)")
    sh(python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel)
    return python


def check_imports(python: Path, venv: Path, work: Path, env: dict[str, str]) -> None:
    lines = sh(python, "-c", WHERE, cwd=work, env=env).splitlines()
    files, version, path = lines[:4], lines[4], lines[5:]
    outside = [f for f in files if not Path(f).resolve().is_relative_to(venv.resolve())]
    if outside:
        fail(f"imported from outside the fresh venv: {outside}")
    if any(p and Path(p).resolve() == ROOT for p in path):
        fail(f"the checkout {ROOT} is on sys.path")
    step(f"mosaic {version.split()[1]} imported from {Path(files[0]).parent}")


def run_tutorial(venv: Path, work: Path, env: dict[str, str]) -> None:
    mosaic = venv / "bin" / "mosaic"
    if not mosaic.is_file():
        fail("the wheel installed no `mosaic` command")
    sh(mosaic, "init", "study", cwd=work, env=env)
    config = work / "study" / "config.ini"
    config.write_text(re.sub(r"(?m)^epochs = .*$", "epochs = 2", config.read_text()))
    step("mosaic run (24 runs, 2 epochs)")
    out = sh(mosaic, "run", "study/config.ini", "study/results", "--no-progress", cwd=work, env=env)
    summary = [line for line in out.splitlines() if "runs" in line]
    step(summary[0].strip() if summary else "(no summary line)")
    out = sh(mosaic, "query", "study/results", "SELECT count(*) AS done FROM runs WHERE status = 'done'",
             "--format", "csv", cwd=work, env=env)
    if out.split() != ["done", "24"]:
        fail(f"mosaic query: expected 24 done runs, got {out!r}")
    sh(mosaic, "report", "study/results", "report.html", cwd=work, env=env)
    if (work / "report.html").stat().st_size < 10_000:
        fail("mosaic report wrote an almost empty report.html")
    step("mosaic init, run, query, report: all ran from the wheel")


def main() -> None:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mosaic-wheel-test-") as tmp:
        tmp_path = Path(tmp)
        if tmp_path.resolve().is_relative_to(ROOT):
            fail(f"the temporary folder {tmp} lies inside the checkout")
        wheel, sdist = build(tmp_path / "dist")
        check_contents(wheel, sdist)
        venv = tmp_path / "venv"
        python = fresh_venv(venv, wheel)
        work = tmp_path / "work"
        work.mkdir()
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
        env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", MOSAIC_STATE_DIR=str(tmp_path / "state"))
        check_imports(python, venv, work, env)
        run_tutorial(venv, work, env)
    step(f"passed in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()

"""The repository's own checks, run by CI through pytest: the layering script
(tools/check_imports.py: no import cycle, no private name imported across modules, the library
never imports runners), ruff, and the declared dependencies."""
import ast
import importlib.metadata as md
import importlib.util
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _checker():
    spec = importlib.util.spec_from_file_location("check_imports", ROOT / "tools" / "check_imports.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_lawfit_has_no_import_cycle_no_private_import_and_never_imports_runners():
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "check_imports.py")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_layering_check_catches_each_kind_of_problem(tmp_path):
    """A small package with one of each problem: the script names every one of them."""
    pkg = tmp_path / "lawfit"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from lawfit import b\n")
    (pkg / "b.py").write_text("def f():\n    from . import a  # deferred, still a dependency\n")
    (pkg / "c.py").write_text("from lawfit.b import _helper\n")
    (pkg / "sub" / "d.py").write_text("from ..b import _private\n")
    (pkg / "e.py").write_text("import runners.sweep\n")
    (pkg / "ok.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                               "    from lawfit.ok2 import _T\nfrom lawfit.b import __doc__\n")
    (pkg / "ok2.py").write_text("from lawfit.ok import x\n")
    (pkg / "cli").mkdir()
    (pkg / "cli" / "__init__.py").write_text("")
    (pkg / "cli" / "run.py").write_text("def run():\n    import runners.cli\n")
    problems = _checker().check(tmp_path)
    text = "\n".join(problems)
    assert "import cycle: lawfit.a -> lawfit.b -> lawfit.a" in text
    assert "lawfit.c imports the private name _helper from lawfit.b" in text
    assert "lawfit.sub.d imports the private name _private from lawfit.b" in text
    assert "lawfit.e imports runners.sweep" in text
    assert len(problems) == 4, text      # TYPE_CHECKING, dunders and the CLI's runners: allowed


def test_ruff_passes_on_the_whole_repository():
    # this interpreter's own ruff first: a pyenv shim on PATH may name a ruff of another Python
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]' brings it)")
    proc = subprocess.run([ruff, "check", "--no-cache", "."], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]


def _third_party_imports(package: str) -> dict[str, set[str]]:
    used: dict[str, set[str]] = {}
    for f in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                mods = [node.module]
            else:
                continue
            for m in mods:
                top = m.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("lawfit", "runners"):
                    used.setdefault(top, set()).add(str(f.relative_to(ROOT)))
    return used


def _names(requirements) -> set[str]:
    return {re.split(r"[<>=\[ ;!~]", r)[0].lower().replace("_", "-") for r in requirements}


@pytest.mark.parametrize("package,groups", [("lawfit", ()), ("runners", ("runners",))])
def test_every_imported_package_is_declared(package, groups):
    """What lawfit imports is in [project] dependencies; what runners/ imports is there or in the
    runners extra."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = _names(cfg["dependencies"])
    for g in groups:
        declared |= _names(cfg["optional-dependencies"][g])
    dists = md.packages_distributions()
    missing = {}
    for top, files in _third_party_imports(package).items():
        names = {d.lower().replace("_", "-") for d in dists.get(top, [top])}
        if not names & declared:
            missing[top] = sorted(files)[:3]
    assert not missing, f"imported but not declared: {missing}"


def test_runner_only_packages_are_not_core_dependencies():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = _names(cfg["dependencies"])
    lawfit_uses = {d.lower() for top in _third_party_imports("lawfit")
                   for d in md.packages_distributions().get(top, [top])}
    backends = {"pyarrow", "h5netcdf", "h5py",        # engines pandas and arviz load by name
                "flatbuffers"}                        # jax.export's serializer (lawfit/programs.py)
    assert core - lawfit_uses - backends == set()

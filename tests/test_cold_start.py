"""Cold start: `lawfit --help`, `--version` and argument errors answer without importing jax,
numpy, pandas, numpyro or matplotlib (command modules import them inside their commands, and
`import lawfit` is lazy)."""
import subprocess
import sys

import pytest

HEAVY = ("jax", "jaxlib", "numpy", "pandas", "scipy", "numpyro", "arviz", "matplotlib", "pyarrow",
         "xarray", "tqdm", "flax")

_PROBE = """
import sys
from lawfit.cli.main import build_parser, main
build_parser()
for argv in ({argvs}):
    try:
        main(list(argv))
    except SystemExit as exc:
        print("EXIT", exc.code)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r})
print("HEAVY", ",".join(heavy))
"""


@pytest.mark.parametrize("argvs", [(), (["--help"],), (["--version"],), (["fit"],),
                                   (["fit", "--help"],), (["critical", "runs.csv", "--bogus"],),
                                   (["nonsense"],)])
def test_help_version_and_argument_errors_import_nothing_heavy(argvs):
    """`lawfit --help`, `--version` and argument errors answer without importing jax, numpy,
    pandas, numpyro or matplotlib (the cold start stays well under half a second)."""
    code = _PROBE.format(argvs=", ".join(repr(a) for a in argvs) + ("," if argvs else ""),
                         heavy=set(HEAVY))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    heavy = proc.stdout.rsplit("HEAVY", 1)[1].strip()
    assert heavy == "", f"imported at cold start: {heavy}"
    for argv in argvs:
        want = "0" if ("--help" in argv or "--version" in argv) else "2"
        assert f"EXIT {want}" in proc.stdout




def test_import_lawfit_imports_nothing_heavy_and_leaves_jax_alone():
    code = ("import sys, lawfit\n"
            f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {set(HEAVY)!r})\n"
            "print(','.join(heavy))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "", proc.stdout + proc.stderr

"""Execute every notebook in notebooks/ and write executed copies (with outputs) to out/notebooks/.

The notebooks are committed with their outputs stripped; this is the command that regenerates the
executed versions:

    .venv/bin/python notebooks/run_all.py            # full settings (minutes to tens of minutes)
    .venv/bin/python notebooks/run_all.py --small    # the small CI settings
    .venv/bin/python notebooks/run_all.py --only uncertainty --out out/notebooks

Figures go to notebooks/figures/ (override with --figures or LAWFIT_NOTEBOOK_FIGURES).
The kernel is the Python running this script (a kernel spec is written to a temporary directory).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
KERNEL = "lawfit-notebooks"


def kernel_dir(base: Path) -> Path:
    """A Jupyter data dir holding one kernel spec that runs this very interpreter."""
    spec = base / "kernels" / KERNEL
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"lawfit ({sys.executable})", "language": "python"}))
    return base


def execute(path: Path, *, small: bool, figures: Path, timeout: int = 1800) -> nbformat.NotebookNode:
    """Run one notebook top to bottom (raises nbclient's CellExecutionError on any cell error)."""
    nb = nbformat.read(path, as_version=4)
    os.environ["LAWFIT_NOTEBOOK_SMALL"] = "1" if small else "0"
    os.environ["LAWFIT_NOTEBOOK_FIGURES"] = str(figures)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["JUPYTER_PATH"] = str(kernel_dir(Path(tmp)))
        client = NotebookClient(nb, kernel_name=KERNEL, timeout=timeout,
                                resources={"metadata": {"path": str(path.parent)}})
        client.execute()
    return nb


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="the small CI settings")
    ap.add_argument("--only", action="append", help="notebook name (without .ipynb); repeatable")
    ap.add_argument("--out", default=str(ROOT / "out" / "notebooks"), help="executed copies go here")
    ap.add_argument("--figures", default=os.environ.get("LAWFIT_NOTEBOOK_FIGURES",
                                                        str(HERE / "figures")))
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = sorted(HERE.glob("*.ipynb"))
    if args.only:
        paths = [p for p in paths if p.stem in args.only]
    for p in paths:
        t = time.time()
        nb = execute(p, small=args.small, figures=Path(args.figures).resolve())
        nbformat.write(nb, out / p.name)
        print(f"{p.name}: {time.time() - t:.0f} s -> {out / p.name}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

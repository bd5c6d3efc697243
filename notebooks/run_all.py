"""Execute every notebook in notebooks/ and write executed copies (with outputs) to out/notebooks/.

The notebooks are committed with their outputs stripped; this is the command that regenerates the
executed versions:

    .venv/bin/python notebooks/run_all.py            # full settings (minutes to tens of minutes)
    .venv/bin/python notebooks/run_all.py --small    # the small CI settings
    .venv/bin/python notebooks/run_all.py --only uncertainty --out out/notebooks
    .venv/bin/python notebooks/run_all.py path/to/other.ipynb     # any notebook, by its path

Progress goes to stderr (lawfit.progress): a bar counting each notebook's cells, with an ETA, on a
terminal; a line per notebook otherwise; nothing with --quiet.

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

from lawfit.progress import Progress, Reporter, counted

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


def execute(path: Path, *, small: bool, figures: Path, timeout: int = 1800,
            progress: Progress | None = None) -> nbformat.NotebookNode:
    """Run one notebook top to bottom (raises nbclient's CellExecutionError on any cell error).

    Parameters
    ----------
    path
        The notebook.
    small
        Its small (CI) settings (``LAWFIT_NOTEBOOK_SMALL``).
    figures
        Where its figures go (``LAWFIT_NOTEBOOK_FIGURES``).
    timeout
        Seconds one cell may run.
    progress
        Told of the code cells executed (a counted stage named after the notebook).

    Returns
    -------
    nbformat.NotebookNode
        The executed notebook, with its outputs.
    """
    nb = nbformat.read(path, as_version=4)
    cells = sum(c.cell_type == "code" and bool(c.source.strip()) for c in nb.cells)
    os.environ["LAWFIT_NOTEBOOK_SMALL"] = "1" if small else "0"
    os.environ["LAWFIT_NOTEBOOK_FIGURES"] = str(figures)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["JUPYTER_PATH"] = str(kernel_dir(Path(tmp)))
        with counted(progress, path.name, cells, unit="cell") as advance:
            client = NotebookClient(nb, kernel_name=KERNEL, timeout=timeout,
                                    resources={"metadata": {"path": str(path.parent)}},
                                    on_cell_executed=lambda **_: advance())
            client.execute()
    return nb


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="*", help="notebooks to run, by path (default: every "
                    "notebook in notebooks/)")
    ap.add_argument("--small", action="store_true", help="the small CI settings")
    ap.add_argument("--only", action="append", help="notebook name (without .ipynb); repeatable")
    ap.add_argument("--out", default=str(ROOT / "out" / "notebooks"), help="executed copies go here")
    ap.add_argument("--figures", default=os.environ.get("LAWFIT_NOTEBOOK_FIGURES",
                                                        str(HERE / "figures")))
    ap.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [Path(p).resolve() for p in args.notebooks] or sorted(HERE.glob("*.ipynb"))
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"error: no such notebook: {', '.join(missing)}", file=sys.stderr)
        return 2
    if args.only:
        paths = [p for p in paths if p.stem in args.only]
    progress = Reporter(args.quiet)
    for p in paths:
        t = time.time()
        nb = execute(p, small=args.small, figures=Path(args.figures).resolve(), progress=progress)
        nbformat.write(nb, out / p.name)
        print(f"{p.name}: {time.time() - t:.0f} s -> {out / p.name}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

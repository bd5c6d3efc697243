"""Figures: every plot type renders a non-empty PNG (and a PDF); the CLI draws saved artefacts."""
from __future__ import annotations

import json

import matplotlib.image as mpimg
import numpy as np
import pytest

import lawfit
import lawfit.report  # noqa: F401  (used as lawfit.report below, whatever ran before)
from lawfit.analysis.backtest import backtest
from lawfit.analysis.critical import critical
from lawfit.cli.main import main
from lawfit.plot import plot_backtest, plot_critical, plot_fit, plot_superiority
from lawfit.simulate import paper_grid


def assert_image(path):
    """A PNG that decodes and is not blank: several distinct colours, a real share not white."""
    assert path.exists() and path.stat().st_size > 5000, path
    img = mpimg.imread(path)[..., :3]
    assert img.shape[0] > 200 and img.shape[1] > 200
    non_white = (img < 0.95).any(axis=-1).mean()
    assert non_white > 0.02, (path, non_white)
    assert len(np.unique((img * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 20


@pytest.fixture(scope="module")
def study():
    f = paper_grid(noise=0.004, seeds=2, seed=3, tasks=("wmt14_en_de",),
                   methods=("fmt", "prompt"))
    f = f[f.factor == "model_params"].reset_index(drop=True)
    res = lawfit.fit(f, "multiplicative", bootstrap=20, seed=0)
    return f, res


@pytest.mark.slow
def test_plot_fit(study, tmp_path):
    f, res = study
    paths = plot_fit(res, f, tmp_path)
    assert sorted(p.name for p in paths) == ["fit.pdf", "fit.png"]
    assert_image(tmp_path / "fit.png")
    assert (tmp_path / "fit.pdf").read_bytes().startswith(b"%PDF")
    # curves only (no runs table), held-out marks
    assert_image(plot_fit(res, None, tmp_path / "bare", formats=("png",))[0])
    held = (f.model_params == 16e9).to_numpy()
    assert_image(plot_fit(res, f, tmp_path / "held", heldout=held, formats=("png",))[0])


def test_plot_critical_and_superiority(study, tmp_path):
    _, res = study
    cr = critical(res, ("fmt", "prompt"), at={"model_params": [1e9, 2e9, 4e9, 8e9, 16e9]})
    paths = plot_critical(cr, tmp_path, formats=("png",))
    names = sorted(p.name for p in paths)
    assert names == ["critical.png", "superiority.png"]
    assert_image(tmp_path / "critical.png")
    assert_image(tmp_path / "superiority.png")
    # from the JSON document as written to critical.json
    from lawfit.io.artefacts import jsonable
    doc = json.loads(json.dumps(jsonable(cr.to_dict())))
    assert_image(plot_superiority(doc, tmp_path / "doc", formats=("png",))[0])


@pytest.mark.slow
def test_plot_backtest(study, tmp_path):
    f, _ = study
    bt = backtest(f, ["multiplicative"], holdout="largest", bootstrap=5)
    paths = plot_backtest(bt, tmp_path, formats=("png",))
    assert sorted(p.name for p in paths) == ["backtest.png", "backtest_multiplicative.png"]
    for p in paths:
        assert_image(p)


def test_cli_plot(study, tmp_path, capsys):
    f, _ = study
    runs = tmp_path / "runs.csv"
    f.to_csv(runs, index=False)
    out = tmp_path / "fit"
    assert main(["fit", str(runs), "--bootstrap", "5", "--out", str(out), "--plot",
                 "--quiet"]) == 0
    assert_image(out / "fit.png")
    (out / "fit.png").unlink()
    capsys.readouterr()
    assert main(["plot", str(out), "--format", "png"]) == 0
    assert_image(out / "fit.png")
    # progress (stderr is not a terminal here): a line when the panels start, one when drawn
    err = capsys.readouterr().err.splitlines()
    assert any(line.endswith("drawing fit: 2 panels") for line in err), err
    assert any("drawing fit: 2/2 done in" in line for line in err), err
    assert main(["plot", str(out), "--format", "png", "--quiet"]) == 0
    assert "drawing" not in capsys.readouterr().err
    assert main(["plot", str(tmp_path / "nothing")]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["plot", str(empty)]) == 2
    assert main(["plot", str(out), "--format", "gif"]) == 2
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.slow
def test_importing_and_plotting_leaves_the_backend_alone(study, tmp_path):
    """lawfit.plot chooses no backend and never touches pyplot: a notebook's or GUI's backend is
    the user's. Checked in a fresh interpreter (this one has imported matplotlib already)."""
    import subprocess
    import sys
    code = (
        "import sys, matplotlib\n"
        "matplotlib.rcParams['backend'] = 'svg'\n"
        "import lawfit, lawfit.plot, lawfit.cli.main\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'\n"
        "assert matplotlib.rcParams['backend'] == 'svg', matplotlib.rcParams['backend']\n"
        "from lawfit.simulate import paper_grid\n"
        "f = paper_grid(noise=0.004, seeds=1, seed=3, tasks=('wmt14_en_de',), methods=('fmt',))\n"
        "f = f[f.factor == 'model_params']\n"
        "res = lawfit.fit(f, 'multiplicative')\n"
        f"paths = lawfit.plot.plot_fit(res, f, {str(tmp_path)!r}, formats=('png', 'pdf'))\n"
        "assert len(paths) == 2\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported by plotting'\n"
        "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend()\n"
        "print('ok')\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0 and "ok" in run.stdout, run.stderr[-2000:]
    assert_image(tmp_path / "fit.png")
    assert (tmp_path / "fit.pdf").read_bytes().startswith(b"%PDF")


"""Backtests: the held-out rule, Delta_e / Delta_h, interval coverage, laws side by side, lin2024
end to end, the CLI."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import require_reference as reference

from lawfit.analysis.backtest import backtest, holdout_mask, parse_holdout
from lawfit.cli.main import main
from lawfit.errors import DataError
from lawfit.simulate import simulate

ROOT = Path(__file__).resolve().parents[1]
MULT = dict(A=2.1e3, E=0.62, alpha=0.36, beta=0.081)
GRID = {"model_params": [1e9, 2e9, 4e9, 8e9, 16e9],
        "finetune_examples": [8e3, 1e4, 2e4, 4e4, 6e4, 8e4, 1e5]}




def runs(noise=0.003, seed=0):
    a = simulate("multiplicative", MULT, GRID, noise=noise, seeds=2, seed=seed,
                 extra={"task": "t", "method": "lora"})
    b = simulate("multiplicative", dict(MULT, A=4e3, beta=0.1), GRID, noise=noise, seeds=2,
                 seed=seed + 1, extra={"task": "t", "method": "prompt"})
    return pd.concat([a, b], ignore_index=True)


# --- the held-out rule ------------------------------------------------------------------------

def test_holdout_largest_is_a_cross_per_group():
    f = runs()
    m = holdout_mask(f, "largest", x="model_params", d="finetune_examples", by=["method"])
    want = (f.model_params == 16e9) | (f.finetune_examples == 1e5)
    np.testing.assert_array_equal(m, want.to_numpy())
    # per group: give one method a smaller largest X
    g = f[~((f.method == "prompt") & (f.model_params == 16e9))].reset_index(drop=True)
    m = holdout_mask(g, "largest-x", x="model_params", d="finetune_examples", by=["method"])
    want = ((g.method == "lora") & (g.model_params == 16e9)) | (
        (g.method == "prompt") & (g.model_params == 8e9))
    np.testing.assert_array_equal(m, want.to_numpy())
    m = holdout_mask(g, "largest-d", x="model_params", d="finetune_examples", by=["method"])
    np.testing.assert_array_equal(m, (g.finetune_examples == 1e5).to_numpy())


def test_holdout_named_values():
    f = runs()
    spec = parse_holdout("model_params=8e9:16e9,finetune_examples=1e5")
    assert spec == {"model_params": [8e9, 16e9], "finetune_examples": [1e5]}
    m = holdout_mask(f, spec, x="model_params", d="finetune_examples", by=[])
    want = f.model_params.isin([8e9, 16e9]) | (f.finetune_examples == 1e5)
    np.testing.assert_array_equal(m, want.to_numpy())
    with pytest.raises(DataError, match="matches no run"):
        holdout_mask(f, "model_params=3e9", x="model_params", d="finetune_examples", by=[])
    with pytest.raises(DataError, match="--holdout"):
        parse_holdout("biggest")
    with pytest.raises(DataError, match="numbers"):
        parse_holdout("model_params=big")


# --- metrics ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_backtest_metrics_and_coverage():
    """On data drawn from the multiplicative law, its held-out error is at the noise level, the
    metrics equal a direct recomputation from the fits, and the predictive interval covers most
    held-out runs."""
    f = runs(noise=0.003, seed=5)
    bt = backtest(f, ["multiplicative"], holdout="largest", bootstrap=40, seed=1)
    assert len(bt.summary) == 2
    s = bt.summary.set_index(["law", "method"])
    for (law, method), row in s.iterrows():
        r = bt.runs[(bt.runs.law == law) & (bt.runs.method == method)]
        assert row.n_heldout == 7 + 5 - 1 and row.n_fit == 4 * 6
        g = bt.fits[law].group(task="t", method=method)
        pred = g.loss(r[["x", "d"]].to_numpy())
        np.testing.assert_allclose(pred, r.prediction, rtol=1e-12)
        err = np.abs(pred - r.loss.to_numpy())
        h = r.heldout.to_numpy()
        assert row.delta_h == pytest.approx(err[h].mean())
        assert row.delta_e == pytest.approx(err[~h].mean())
    # the true law extrapolates at the noise level of a 2-seed mean (sd 0.003/sqrt(2))
    assert s.loc[("multiplicative", "lora"), "delta_h"] < 0.006
    # 22 held-out runs of one realisation: loose; benchmarks/ measures the rate properly
    assert bt.summary.coverage_predictive.mean() >= 0.7
    assert (bt.summary.coverage <= bt.summary.coverage_predictive + 1e-12).all()
    wide = bt.comparison()
    assert list(wide.columns) == ["task", "method", "multiplicative"]
    doc = json.loads(json.dumps(bt.to_dict()))
    assert doc["rule"].startswith("a run is held out when its X or its D")


def test_backtest_rejects_bad_input():
    f = runs()
    with pytest.raises(DataError, match="variables"):
        backtest(f, ["power"])
    with pytest.raises(DataError, match="every run"):
        backtest(f[f.model_params == 16e9], ["multiplicative"], holdout="largest-x")
    with pytest.raises(DataError, match="unknown law"):
        backtest(f, ["quadratic"])


# --- lin2024 (real runs) ----------------------------------------------------------------------

@pytest.mark.slow
def test_lin2024_family_backtest_end_to_end():
    """GPT-2 family on WMT19 (5 sizes x 14 finetuning sizes; base-model rows excluded), the
    largest model and the largest D held out, both laws."""
    path = reference("lin2024", "lin2024_wmt19.csv")
    f = pd.read_csv(path)
    bt = backtest(f, ["multiplicative", "additive"], holdout="largest", by=["task", "family"],
                  where="finetune_examples > 0 and family == 'GPT2'", bootstrap=10, starts=64)
    s = bt.summary.set_index("law")
    for law in ("multiplicative", "additive"):
        assert s.loc[law, "n_heldout"] == 14 + 5 - 1 and s.loc[law, "n_fit"] == 4 * 13
        assert 0 < s.loc[law, "delta_e"] < 0.5 and 0 < s.loc[law, "delta_h"] < 1.0
    held = bt.runs[bt.runs.heldout]
    assert set(held.x.max() == held.x) and held.x.max() == f[f.family == "GPT2"].model_params.max()
    assert not (bt.runs.d == 0).any()
    assert list(bt.comparison().columns) == ["task", "family", "multiplicative", "additive"]


# --- command line -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def runs_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("bt") / "runs.csv"
    runs(seed=9).to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_cli_backtest_writes_outputs(runs_csv, tmp_path, capsys):
    out = tmp_path / "bt"
    rc = main(["backtest", str(runs_csv), "--laws", "multiplicative", "--bootstrap", "10",
               "--holdout", "model_params=16e9", "--out", str(out), "--quiet"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "Delta_h" in printed
    doc = json.loads((out / "backtest.json").read_text())
    assert doc["holdout"] == {"model_params": [16e9]}
    assert {r["method"] for r in doc["summary"]} == {"lora", "prompt"}
    runs_out = pd.read_csv(out / "backtest_runs.csv")
    assert set(runs_out[runs_out.heldout].x) == {16e9}
    assert (out / "fits" / "multiplicative" / "fit.json").exists()
    assert doc["data"]["path"] == str(runs_csv) and len(doc["data"]["sha256"]) == 64
    # the directory reads back into the same backtest (lawfit/io/results.py)
    from lawfit.io.artefacts import jsonable
    from lawfit.io.results import read_backtest
    bt = read_backtest(out)
    assert json.loads(json.dumps(jsonable(bt.to_dict()))) == doc
    pd.testing.assert_frame_equal(bt.runs, runs_out)
    assert list(bt.fits) == ["multiplicative"] and bt.fits["multiplicative"].groups


@pytest.mark.parametrize("args,needle", [
    (["--holdout", "biggest"], "--holdout"),
    (["--holdout", "model_params=3e9"], "matches no run"),
    (["--laws", "power"], "variables"),
    (["--law", "additive"], "--laws"),
    (["--plot"], "--plot needs --out"),
])
def test_cli_backtest_bad_input_exits_2(runs_csv, args, needle, capsys):
    rc = main(["backtest", str(runs_csv), "--bootstrap", "0", "--quiet", *args])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert needle in err and "Traceback" not in err


def test_cli_backtest_base_model_rows_exit_2(capsys):
    path = reference("lin2024", "lin2024_wmt19.csv")
    rc = main(["backtest", str(path), "--by", "task,family", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "finetune_examples > 0" in err

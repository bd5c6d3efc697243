"""Fit quality (lawfit.quality): every group says whether the law describes its runs, and a
clearly misspecified law is flagged ``poor_fit``, calibrated in both directions: data drawn from the
fitted law rarely trip it, real runs that bend away from the law (Lin et al.'s Gigaword GPT-2
family, RMSE 0.1 nats) and simulated data from another law are flagged."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import require_reference, run_main

import lawfit
import lawfit.io.artefacts
import lawfit.report
from lawfit.laws import get_law
from lawfit.quality import assess, lack_of_fit, runs_test

MULT = get_law("multiplicative")
TRUTH = {"A": 300.0, "E": 0.6, "alpha": 0.3, "beta": 0.1}
X = np.array([1e9, 2e9, 4e9, 8e9, 16e9])
D = np.geomspace(1e3, 1e6, 7)


def grid_runs(loss_fn, rng, noise=0.005, seeds=3) -> pd.DataFrame:
    xx, dd = np.meshgrid(X, D, indexing="ij")
    x, d = np.repeat(xx.ravel(), seeds), np.repeat(dd.ravel(), seeds)
    loss = loss_fn(x, d) + noise * rng.standard_normal(len(x))
    return pd.DataFrame({"task": "t", "method": "m", "model_params": x, "finetune_examples": d,
                         "seed": np.tile(np.arange(seeds), len(xx.ravel())), "loss": loss})


def multiplicative(x, d):
    return MULT.predict(TRUTH, x=x, d=d)


def prepower(x, d):
    """The multiplicative law with a pre-power phase (Lin et al. 2024): flat at small D."""
    return 300.0 * x ** -0.3 * (d + 3e4) ** -0.1 + 0.6


def test_runs_test_sees_long_runs_and_not_alternation():
    r = np.array([1.0, -1.0] * 10)
    assert runs_test(r, np.arange(20))["p"] > 0.99          # alternating: as many runs as can be
    blocks = np.repeat([1.0, -1.0, 1.0, -1.0], 5)
    res = runs_test(blocks, np.arange(20))
    assert res["runs"] == 4 and res["p"] < 1e-3
    # within curves: the same blocks split across two curves are ordered per curve
    within = np.repeat([0, 1], 10)
    assert runs_test(blocks, np.tile(np.arange(10), 2), within)["runs"] == 4
    assert runs_test(np.ones(20), np.arange(20)) is None       # no negative residual: no test


def _runs_test_curve_by_curve(r, order_by, within):
    """runs_test written curve by curve: each curve's residual signs ordered along order_by, its
    runs and their null mean and variance added up in order of the curves' first appearance."""
    keep = r != 0
    r, order_by, labels = r[keep], order_by[keep], within[keep]
    if len(r) < 10 or (r > 0).sum() < 2 or (r < 0).sum() < 2:
        return None
    runs = expected = var = 0.0
    for lab in pd.unique(labels):
        s = np.sign(r[labels == lab][np.argsort(order_by[labels == lab], kind="stable")])
        n, a = len(s), int((s > 0).sum())
        b = n - a
        runs += 1 + int(np.count_nonzero(s[1:] != s[:-1]))
        if a == 0 or b == 0:
            expected += 1
            continue
        expected += 2.0 * a * b / n + 1
        var += 2.0 * a * b * (2.0 * a * b - n) / (n * n * (n - 1))
    if var <= 0:
        return None
    return runs, expected, (runs - expected) / np.sqrt(var), len(r)


def test_runs_test_counts_all_curves_at_once_as_curve_by_curve():
    """The runs test counts the sign runs of every curve at once (numpy): the same runs, expected
    runs and z, to the bit, as counting curve by curve, with ties along the variable, zero
    residuals, one-sign curves and text labels."""
    rng = np.random.default_rng(3)
    tested = 0
    for t in range(400):
        n = int(rng.integers(8, 50))
        r = np.round(rng.normal(size=n), 1) * (rng.random(n) > 0.1)
        order_by = rng.integers(0, 6, n).astype(float)
        within = rng.integers(0, int(rng.integers(1, 7)), n)
        if t % 2:
            within = np.array([f"curve {w}" for w in within])
        want, got = _runs_test_curve_by_curve(r, order_by, within), runs_test(r, order_by, within)
        if want is None:
            assert got is None
            continue
        tested += 1
        assert (got["runs"], got["expected"], got["z"], got["n"]) == want
    assert tested > 300


def test_structure_tests_of_many_groups_at_once_are_each_groups_own():
    """structure_many (every group of a batched fit at once) gives each group the structure tests
    assess gives it alone, to the bit: groups of different sizes, one to three variables, curves
    or none, ties, zero residuals, too few distinct values."""
    from lawfit.quality import structure_many
    rng = np.random.default_rng(1)
    tested = 0
    for _ in range(60):
        n_groups, n_vars = int(rng.integers(1, 10)), int(rng.integers(1, 4))
        res, var = [], []
        for _ in range(n_groups):
            n = int(rng.integers(3, 40))
            var.append(np.stack([rng.choice(rng.uniform(1, 100, int(rng.integers(1, 6))), n)
                                 for _ in range(n_vars)], -1))
            res.append(np.round(rng.normal(size=n), 1) * (rng.random(n) > 0.1))
        many = structure_many(np.concatenate(res), np.concatenate(var),
                              np.repeat(np.arange(n_groups), [len(r) for r in res]))
        names = [f"v{j}" for j in range(n_vars)]
        for g in range(n_groups):
            alone = assess(res[g], var[g], names, n_params=2)["structure"]
            assert many[g] == [alone[nm] for nm in names]
            tested += sum(alone[nm] is not None for nm in names)
    assert tested > 100


def test_lack_of_fit_ratio_is_one_when_the_seeds_explain_the_scatter():
    rng = np.random.default_rng(0)
    m, k, sd = 400, 3, 0.01
    seeds = sd * rng.standard_normal((m, k))
    res = lack_of_fit(seeds.mean(1), np.full(m, k), ((seeds - seeds.mean(1, keepdims=True)) ** 2
                                                     ).sum(1), n_params=0)
    assert abs(res["scatter_ratio"] - 1) < 0.1 and abs(res["seed_sd"] - sd) < 0.001
    bent = seeds.mean(1) + 0.02
    assert lack_of_fit(bent, np.full(m, k), ((seeds - seeds.mean(1, keepdims=True)) ** 2
                                             ).sum(1), 0)["p"] < 1e-10


@pytest.mark.slow
def test_correct_law_rarely_trips_poor_fit_and_a_wrong_one_does():
    """Calibration, both directions. 30 datasets from the multiplicative law (5 model sizes x 7
    data sizes x 3 seeds, noise sd 0.005) fitted with that law: at most 1 flagged (the thresholds
    put the rate near 0.2%; 2 of 30 would be a >1% false-alarm rate). 10 datasets from the law with
    a pre-power phase, fitted with the multiplicative law: at least 9 flagged."""
    rng = np.random.default_rng(12)
    flagged_true = []
    for _ in range(30):
        res = lawfit.fit(grid_runs(multiplicative, rng), "multiplicative")
        (g,) = res.groups
        flagged_true.append(g.info["fit_quality"]["poor_fit"])
        assert g.status != "poor_fit" or g.info["fit_quality"]["poor_fit"]
    flagged_wrong = []
    for _ in range(10):
        res = lawfit.fit(grid_runs(prepower, rng), "multiplicative")
        (g,) = res.groups
        flagged_wrong.append(g.info["fit_quality"]["poor_fit"])
        if g.info["fit_quality"]["poor_fit"] and g.status != "at_bound":
            assert g.status == "poor_fit"
    assert sum(flagged_true) <= 1, flagged_true
    assert sum(flagged_wrong) >= 9, flagged_wrong


def test_gigaword_gpt2_is_flagged_with_its_quality_in_fit_json(tmp_path, capsys):
    """Lin et al.'s Gigaword GPT-2 family under the multiplicative law: the solver converges, the
    residual RMSE is ~0.1 nats and the residuals run along D: poor_fit, in fit.json and printed."""
    path = require_reference("lin2024", "lin2024_gigaword.csv")
    out = tmp_path / "fit"
    proc = run_main(capsys, "fit", path, "--where", "finetune_examples > 0 and family == 'GPT2'",
                   "--by", "family", "--out", out, "--quiet")
    assert proc.returncode == 0, proc.stderr
    (g,) = json.loads((out / "fit.json").read_text())["groups"]
    fq = g["fit_quality"]
    assert g["status"] == "poor_fit" and fq["poor_fit"]
    assert 0.08 < fq["rmse"] < 0.13 and fq["space"] == "loss"
    assert fq["structure"]["finetune_examples"]["p"] < 1e-3
    assert fq["max_std_residual"]["run"]["model"] and abs(fq["max_std_residual"]["value"]) > 2
    assert any(w.startswith("poor_fit") for w in g["warnings"])
    assert "POOR FIT" in proc.stdout and "poor_fit" in proc.stdout
    # loading the directory back keeps the block
    assert lawfit.io.artefacts.load_fit(out).groups[0].info["fit_quality"]["poor_fit"]


def test_seeds_lack_of_fit_and_scale_at_its_floor_prints_as_zero(tmp_path, capsys):
    """Where seeds repeat the block carries the residual/seed scatter ratio (about 1 for the true
    law); a scale parameter at its floor prints as "0 (at bound)", not as 1e-11."""
    rng = np.random.default_rng(3)
    # the truth's E is negative: the best E >= 0 is 0, at the solver's floor
    runs = grid_runs(lambda x, d: 300.0 * x ** -0.3 * d ** -0.1 - 0.01, rng, noise=0.002)
    path = tmp_path / "runs.csv"
    runs.to_csv(path, index=False)
    out = tmp_path / "fit"
    proc = run_main(capsys, "fit", path, "--bootstrap", "20", "--out", out, "--quiet")
    assert proc.returncode == 0, proc.stderr
    (g,) = json.loads((out / "fit.json").read_text())["groups"]
    assert g["status"] == "at_bound" and g["params"]["E"]["at_bound"]
    line = next(ln for ln in proc.stdout.splitlines() if ln.strip().startswith("E "))
    assert line.split()[1:4] == ["0", "(at", "bound)"] and "e-1" not in line
    s = g["fit_quality"]["seeds"]
    assert 0.6 < s["scatter_ratio"] < 1.5 and abs(s["seed_sd"] - 0.002) < 0.0006
    assert not g["fit_quality"]["poor_fit"]


def test_assess_reports_the_worst_run():
    r = np.array([0.01, -0.01, 0.5, 0.0, 0.02, -0.02, 0.01, -0.01, 0.01, -0.01, 0.0, 0.01])
    v = np.column_stack([np.arange(12) + 1.0, np.ones(12)])
    q = assess(r, v, ["x", "d"], n_params=2, runs=[{"run_id": f"r{i}"} for i in range(12)])
    assert q["max_std_residual"]["run"] == {"run_id": "r2"} and q["max_std_residual"]["value"] > 2
    assert q["structure"]["d"] is None                       # one value of d: nothing to test

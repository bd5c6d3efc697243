"""Predictions for new runs: the new-run interval covers fresh runs at its level, the curve's
interval does not, and multi-group fits (a two-stage recipe's @factor) pick the right group."""
import numpy as np
import pytest
from conftest import run_cli

import lawfit
from lawfit.analysis import recipes
from lawfit.errors import DataError
from lawfit.simulate import paper_grid, simulate

CASES = {
    # law, truth, fitted grid, noise sd, objective
    "loss space": ("multiplicative", {"A": 300.0, "E": 0.6, "alpha": 0.3, "beta": 0.1},
                   {"model_params": [1e8, 2e8, 4e8, 8e8, 1.6e9],
                    "finetune_examples": [1e3, 3e3, 1e4, 3e4, 1e5]}, 0.004, "mse"),
    "log space": ("chinchilla", {"A": 406.4, "B": 410.7, "E": 1.69, "alpha": 0.34, "beta": 0.28},
                  {"model_params": [1e8, 2e8, 4e8, 8e8, 1.6e9],
                   "pretrain_tokens": [2e9, 6e9, 2e10, 6e10, 2e11]}, 0.01, "mse-log"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_new_run_interval_covers_fresh_runs(case):
    """6 datasets x 16 fresh single runs (inside the fitted grid and one step beyond it): the 95%
    new-run interval must cover >= 85 of 96 (at a true 70% that has probability ~1e-5), the
    curve's interval covers far fewer."""
    law, truth, grid, noise, objective = CASES[case]
    rng = np.random.default_rng(1)
    xcol, dcol = list(grid)
    inside = new = curve = 0
    for rep in range(6):
        runs = simulate(law, truth, grid, noise=noise, seeds=2, seed=rep)
        fit = lawfit.fit(runs, law, objective=objective, bootstrap=100, seed=rep)
        pts = {xcol: rng.choice(grid[xcol] + [3.2e9], 16),
               dcol: rng.choice(grid[dcol][1:] + [grid[dcol][-1] * 3], 16)}
        mean = lawfit.get_law(law).predict(truth, x=pts[xcol], d=pts[dcol])
        fresh = mean + rng.normal(0.0, noise, 16)           # one new run each
        pn = fit.predict(pts)
        pc = fit.predict(pts, interval="curve")
        assert set(pn["interval"]) == {"new-run"} and set(pc["interval"]) == {"curve"}
        assert (pn["hi"] - pn["lo"] > pc["hi"] - pc["lo"]).all()
        new += int(((pn["lo"] <= fresh) & (fresh <= pn["hi"])).sum())
        curve += int(((pc["lo"] <= fresh) & (fresh <= pc["hi"])).sum())
        inside += 16
    assert new >= 85, f"new-run interval covered {new}/{inside}"
    assert curve <= 0.75 * inside, f"curve interval covered {curve}/{inside}"


@pytest.mark.slow
def test_residual_scale_is_in_the_objectives_space():
    law, truth, grid, noise, _ = CASES["log space"]
    runs = simulate(law, truth, grid, noise=noise, seeds=1, seed=0)
    for objective, space in (("mse-log", "log"), ("mse", "loss")):
        res = lawfit.fit(runs, law, objective=objective).groups[0].info["residual"]
        assert res["space"] == space and res["dof"] == len(runs) - 5
    sd_log = lawfit.fit(runs, law, objective="mse-log").groups[0].info["residual"]["sd"]
    sd_loss = lawfit.fit(runs, law, objective="mse").groups[0].info["residual"]["sd"]
    assert sd_loss == pytest.approx(noise, rel=0.3)
    assert sd_log == pytest.approx(noise / runs["loss"].mean(), rel=0.35)


@pytest.mark.slow
def test_two_stage_fit_predicts_through_its_factor_column(tmp_path):
    frame = paper_grid(seed=3, tasks=("wmt14_en_de",), methods=("fmt", "lora"))
    res = recipes.zhang2024(frame, bootstrap=20, seed=0, starts=20)
    p = res.predict([{"method": "lora", "model_params": 16e9, "finetune_examples": 1e6},
                     {"method": "lora", "pet_params": 8, "finetune_examples": 1e5}])
    g_m = res.group(method="lora", factor="model_params")
    g_t = res.group(method="lora", factor="pet_params")
    assert p["prediction"].iloc[0] == pytest.approx(g_m.loss(np.array([[16e9, 1e6]]))[0])
    assert p["prediction"].iloc[1] == pytest.approx(g_t.loss(np.array([[8.0, 1e5]]))[0])
    assert list(p["extrapolated"]) == [True, False]
    with pytest.raises(DataError, match="method=... \\(one of \\['fmt', 'lora'\\]\\)"):
        res.predict({"model_params": [16e9], "finetune_examples": [1e6]})
    with pytest.raises(DataError, match="factor"):
        res.predict({"method": ["lora"], "model_params": [16e9], "pet_params": [8],
                     "finetune_examples": [1e6]})
    with pytest.raises(DataError, match="one of model_params, pet_params, pretrain_tokens"):
        res.predict({"method": ["lora"], "finetune_examples": [1e6]})
    # the command line says which interval it printed
    from lawfit.io.artefacts import write_fit
    write_fit(res, tmp_path)
    at = "method=lora,model_params=16e9,finetune_examples=1e6"
    new = run_cli("predict", tmp_path, "--at", at)
    assert new.returncode == 0, new.stderr
    assert new.stderr.startswith("95% interval (lo, hi): new-run")
    assert new.stdout.split()[:2] == ["method", "model_params"] and "new-run" in new.stdout
    cur = run_cli("predict", tmp_path, "--at", at, "--interval", "curve")
    assert cur.stderr.startswith("95% interval (lo, hi): curve")
    bad = run_cli("predict", tmp_path, "--at", "model_params=16e9,finetune_examples=1e6")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1

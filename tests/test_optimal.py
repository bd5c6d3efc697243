"""Compute-optimal allocation (lawfit optimal): closed form against brute force, Epoch AI's
replication data, bad input."""
import json

import numpy as np
import pytest
from conftest import ROOT, run_cli, run_main
from scipy.optimize import minimize_scalar

import lawfit
from lawfit.analysis import recipes
from lawfit.analysis.optimal import allocation
from lawfit.simulate import simulate

EPOCH = ROOT / "data" / "epoch2024_chinchilla.csv"
HOFFMANN = {"A": 406.4, "B": 410.7, "E": 1.69, "alpha": 0.34, "beta": 0.28}


def test_closed_form_is_the_minimum_along_the_compute_budget():
    names = ["A", "B", "E", "alpha", "beta"]
    for p in (HOFFMANN, {"A": 478.0, "B": 2143.0, "E": 1.82, "alpha": 0.347, "beta": 0.367},
              {"A": 50.0, "B": 9000.0, "E": 0.5, "alpha": 0.2, "beta": 0.45}):
        theta = np.array([p[n] for n in names])
        for c in (1e19, 5.88e23, 1e26):
            n_opt, d_opt, loss = (a[0, 0] for a in allocation(theta[None], names, [c]))

            def lossof(log_n):
                n = np.exp(log_n)
                return p["E"] + p["A"] / n ** p["alpha"] + p["B"] / (c / (6 * n)) ** p["beta"]

            best = minimize_scalar(lossof, bounds=(np.log(1e3), np.log(c / 6 / 1e3)),
                                   method="bounded", options={"xatol": 1e-10})
            assert np.exp(best.x) == pytest.approx(n_opt, rel=1e-4)
            assert n_opt * d_opt * 6 == pytest.approx(c, rel=1e-12)
            assert loss == pytest.approx(best.fun, rel=1e-10)


def test_no_interior_optimum_is_counted_not_hidden():
    names = ["A", "B", "E", "alpha", "beta"]
    n, d, loss = allocation(np.array([[400.0, 400.0, 1.7, -0.1, 0.3]]), names, [1e22])
    assert np.isnan(n).all() and np.isnan(d).all()


def test_epoch_replication_gives_about_18_tokens_per_parameter(tmp_path, capsys):
    """Epoch AI's data (Chinchilla's Figure 4, 240 runs after their exclusion of the 5 largest
    losses), the epoch2024 recipe: 18 tokens per parameter at Chinchilla's 5.88e23 FLOP (Epoch
    report about 20, with the Huber-scale estimator); Hoffmann et al.'s Approach 3 exponent
    a = 0.46 lies below lawfit's interval, Epoch's 0.51 inside."""
    frame, _ = lawfit.read_runs(EPOCH)
    preset = {k: v for k, v in recipes.RECIPES["epoch2024"].items() if k != "law"}
    preset["bootstrap"] = 200
    res = lawfit.fit(frame, "chinchilla", where="not epoch_excluded", seed=1, **preset)
    opt = lawfit.optimal(res, 5.88e23)
    row = opt.rows[0]
    tpp = row["tokens_per_param"]
    assert 17.0 < tpp["estimate"] < 19.0
    assert tpp["lo"] < 20.0 < tpp["hi"]
    assert row["model_params"]["lo"] < row["model_params"]["estimate"] < row["model_params"]["hi"]
    a = opt.exponents[0]["a"]
    assert a["lo"] < 0.51 < a["hi"] and a["lo"] > 0.46
    assert opt.exponents[0]["b"]["estimate"] == pytest.approx(1 - a["estimate"])
    # the same through the command line: optimal.json and the frontier figure
    fit_dir = tmp_path / "fit"
    from lawfit.io.artefacts import write_fit
    write_fit(res, fit_dir)
    proc = run_main(capsys, "optimal", fit_dir, "--compute", "5.88e23,1e25", "--out", tmp_path / "opt")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((tmp_path / "opt" / "optimal.json").read_text())
    assert [r["compute"] for r in doc["rows"]] == [5.88e23, 1e25]
    for what in ("tokens_per_param", "model_params", "tokens"):
        assert set(doc["rows"][0][what]) == {"estimate", "lo", "hi"}
    assert doc["rows"][0]["tokens_per_param"]["estimate"] == pytest.approx(tpp["estimate"])
    assert (tmp_path / "opt" / "optimal.png").exists()
    from lawfit.io.artefacts import jsonable
    from lawfit.io.results import read_optimal
    back = read_optimal(tmp_path / "opt")
    assert json.loads(json.dumps(jsonable(back.as_dict()))) == doc
    assert "tokens per parameter" in proc.stdout
    # an existing optimal.json is not overwritten
    again = run_main(capsys, "optimal", fit_dir, "--compute", "1e24", "--out", tmp_path / "opt")
    assert again.returncode == 2 and "exists" in again.stderr
    assert json.loads((tmp_path / "opt" / "optimal.json").read_text()) == doc


@pytest.mark.slow
def test_bad_input_exits_2_with_one_line(tmp_path):
    runs = simulate("multiplicative", {"A": 300.0, "E": 0.6, "alpha": 0.3, "beta": 0.1},
                    {"model_params": [1e8, 1e9, 1e10], "finetune_examples": [1e3, 1e4, 1e5]},
                    noise=0.002, seeds=1)
    runs.to_csv(tmp_path / "runs.csv", index=False)
    assert run_cli("fit", tmp_path / "runs.csv", "--out", tmp_path / "mult",
                   "--quiet").returncode == 0
    chin = simulate("chinchilla", HOFFMANN, {"model_params": [1e8, 1e9, 1e10],
                                             "pretrain_tokens": [1e9, 1e10, 1e11]},
                    noise=0.002, seeds=1)
    chin.to_csv(tmp_path / "chin.csv", index=False)
    assert run_cli("fit", tmp_path / "chin.csv", "--law", "chinchilla", "--out",
                   tmp_path / "chin", "--quiet").returncode == 0
    for args, words in [((tmp_path / "mult", "--compute", "1e22"), "chinchilla law"),
                        ((tmp_path / "chin", "--compute", "0"), "positive"),
                        ((tmp_path / "chin", "--compute=-1e22"), "positive"),
                        ((tmp_path / "chin", "--compute", "lots"), "FLOP"),
                        ((tmp_path / "nowhere", "--compute", "1e22"), "fit.json")]:
        proc = run_cli("optimal", *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 and words in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr

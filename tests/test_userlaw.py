"""Any law as a jax function: the decorator, the rectified law with its base-model row, the
user's own module on the command line, and the pre-power phase."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from conftest import run_cli

import lawfit
from lawfit import lsq, prepower
from lawfit.errors import DataError
from lawfit.laws import LAWS, get_law
from lawfit.numerics import float64
from lawfit.objectives import make_objective

TRUTH = dict(B=40.0, Dl=30.0, beta=0.45, E=1.1)
LAW_SOURCE = '''import lawfit


@lawfit.law(params={"B": (1e-2, 1e4), "Dl": (1e-2, 1e7), "beta": (0.0, 2.0), "E": (1e-3, 10.0)},
            variables=("finetune_examples",))
def rectified(p, D):
    return p["B"] / (p["Dl"] + D ** p["beta"]) + p["E"]
'''


@lawfit.law(params={"B": (1e-2, 1e4), "Dl": (1e-2, 1e7), "beta": (0.0, 2.0), "E": (1e-3, 10.0)},
            variables=("finetune_examples",))
def my_rectified(p, D):
    return p["B"] / (p["Dl"] + D ** p["beta"]) + p["E"]


def simulate(n_sims=1, noise=0.01, seed=0):
    """Rectified-law curves with a base-model row: D = 0 and 24 sizes from 100 to 1e6."""
    rng = np.random.default_rng(seed)
    d = np.concatenate([[0.0], np.geomspace(100, 1e6, 24)])
    true = TRUTH["B"] / (TRUTH["Dl"] + d ** TRUTH["beta"]) + TRUTH["E"]
    rows = [pd.DataFrame({"sim": s, "finetune_examples": d,
                          "loss": true * np.exp(rng.normal(0, noise, len(d)))})
            for s in range(n_sims)]
    return pd.concat(rows, ignore_index=True)


def test_decorator_makes_a_law_with_log_scaled_ranges_and_zero_rows():
    assert isinstance(my_rectified, lawfit.Law)
    assert my_rectified.params == ("B", "Dl", "beta", "E")
    assert my_rectified.log_params == ("B", "Dl", "E")          # beta's range is linear
    assert my_rectified.zero_ok == ("x",)                        # finite at D = 0
    assert my_rectified.default_columns == {"x": "finetune_examples"}
    g = my_rectified.grid()
    assert np.isclose(np.exp(g[:, 1].min()), 1e-2) and np.isclose(np.exp(g[:, 1].max()), 1e7)
    d = np.array([0.0, 1e3])
    assert np.allclose(get_law("rectified").predict(TRUTH, x=d),
                       TRUTH["B"] / (TRUTH["Dl"] + d ** TRUTH["beta"]) + TRUTH["E"], rtol=1e-12)

    @lawfit.law(params={"A": (1e-2, 1e4), "alpha": (0.0, 1.0), "E": (1e-2, 10.0)},
                variables=("finetune_examples",))
    def plain_power(p, D):
        return p["A"] * D ** -p["alpha"] + p["E"]
    assert plain_power.zero_ok == ()                             # infinite at D = 0


def test_user_law_optimum_equals_the_builtin_rectified():
    frame = simulate()
    a = lawfit.fit(frame, my_rectified, by=[], objective="mse-log")
    b = lawfit.fit(frame, "rectified", by=[], objective="mse-log")
    ga, gb = a.groups[0], b.groups[0]
    assert ga.status == gb.status == "converged"
    assert np.isclose(ga.objective_value, gb.objective_value, rtol=1e-9)
    assert np.allclose(ga.estimate, gb.estimate, rtol=1e-5)
    assert np.allclose(ga.estimate, [TRUTH[p] for p in ga.law.params], rtol=0.3)


@pytest.mark.slow
def test_user_law_bootstrap_intervals_cover_the_truth():
    n_sims = 40
    frame = simulate(n_sims, seed=1)
    res = lawfit.fit(frame, my_rectified, by=["sim"], objective="mse-log", bootstrap=200, seed=2)
    truth = np.array([TRUTH[p] for p in my_rectified.params])
    covered = np.array([(g.interval()[0] <= truth) & (truth <= g.interval()[1])
                        for g in res.groups])
    assert all(g.status == "converged" for g in res.groups)
    # 95% intervals: P(Binomial(40, 0.95) <= 33) < 1%
    assert (covered.sum(axis=0) >= 34).all(), covered.sum(axis=0)


@pytest.mark.slow     # the autodiff path itself is in the quick set: the rectified @lawfit.law above
@pytest.mark.parametrize("name", [n for n, law in LAWS.items() if law.analytic])
@float64     # computes with jax directly: in float64, as lawfit does (lawfit/numerics.py)
def test_autodiff_path_matches_the_analytic_derivatives(name):
    law = get_law(name)
    rng = np.random.default_rng(3)
    v = np.exp(rng.uniform(np.log(1e3), np.log(1e9), (30, len(law.variables))))
    theta = law.to_internal({p: 0.5 for p in law.params})
    y = np.exp(np.asarray(law.log_predict(jnp.asarray(theta), jnp.log(v)))) * 1.01
    obj = make_objective("huber", 0.003)
    prob = lsq.Problem.simple(law, obj, np.log(v), y)
    data, w = lsq.solver_arrays(prob)
    f1, g1, h1 = lsq.full_objective(obj)[1](jnp.asarray(theta), w, data)[:3]
    generic = lsq.autodiff_objective(law, obj)
    lsq.ANALYTIC = False
    try:
        data2, w2 = lsq.solver_arrays(prob)
    finally:
        lsq.ANALYTIC = True
    f2, g2, h2 = generic[1](jnp.asarray(theta), w2, data2)[:3]
    assert np.isclose(f1, f2, rtol=1e-12)
    assert np.allclose(g1, g2, rtol=1e-9, atol=1e-14)
    assert np.allclose(h1, h2, rtol=1e-8, atol=1e-12)
    assert np.allclose(jax.hessian(generic[0])(jnp.asarray(theta), w2, data2), h2)


def test_base_model_rows_are_fitted_by_rectified_and_refused_by_power():
    frame = simulate()
    assert (frame.finetune_examples == 0).sum() == 1
    res = lawfit.fit(frame, "rectified", by=[])
    assert res.groups[0].n_points == len(frame)
    base = res.groups[0].loss(np.array([[0.0]]))[0]
    assert np.isclose(base, TRUTH["B"] / TRUTH["Dl"] + TRUTH["E"], rtol=0.05)
    pred = res.predict(pd.DataFrame({"finetune_examples": [0.0]}))
    assert np.isclose(pred["prediction"].iloc[0], base)
    with pytest.raises(DataError, match="must be positive.*D_f = 0 is the base model"):
        lawfit.fit(frame, "power", by=[])
    with pytest.raises(DataError, match="must be positive"):
        lawfit.fit(frame.assign(finetune_examples=frame.finetune_examples - 1), "rectified",
                   by=[])


def flat_then_power(start=3200.0, noise=0.002, seed=0):
    """A curve flat below ``start`` (the pre-power phase), a power law from there on."""
    rng = np.random.default_rng(seed)
    d = 200.0 * 2.0 ** np.arange(12)                        # 200 .. 409,600
    power = 0.2 + 30.0 * d ** -0.3
    flat = 0.2 + 30.0 * start ** -0.3 * (1 + 0.01 * np.log(start / d))   # nearly flat
    y = np.where(d >= start, power, flat) * np.exp(rng.normal(0, noise, len(d)))
    return pd.DataFrame({"finetune_examples": np.concatenate([[0.0], d]),
                         "loss": np.concatenate([[5.0], y])})


@pytest.mark.parametrize("start", [800.0, pytest.param(3200.0, marks=pytest.mark.slow),
                                   pytest.param(12800.0, marks=pytest.mark.slow)])
def test_pre_power_phase_is_found_on_a_curve_with_a_known_flat_phase(start):
    c = flat_then_power(start)
    ph = prepower.power_phase(c.finetune_examples, c.loss, "validate")
    # the first power-phase run, or its neighbour (the kink itself fits both phases)
    assert start / 2 <= ph.start <= 2 * start, ph
    res = lawfit.fit(c, "power", by=[], pre_power="validate")
    g = res.groups[0]
    info = g.info["pre_power"]
    assert info["method"] == "validate" and info["curves"][0]["start"] == ph.start
    assert g.n_points == int((c.finetune_examples >= ph.start).sum())
    assert any("pre-power phase" in w for w in g.warnings)
    assert np.isclose(g.params["alpha"], 0.3, atol=0.05)
    # fitted through the flat phase the same law misses the exponent
    with pytest.raises(DataError):
        lawfit.fit(c, "power", by=[])                           # the base row: refused
    whole = lawfit.fit(c[c.finetune_examples > 0], "power", by=[]).groups[0]
    assert abs(whole.params["alpha"] - 0.3) > abs(g.params["alpha"] - 0.3)


def test_ats_follows_lin_et_al():
    c = flat_then_power(3200.0)
    ph = prepower.power_phase(c.finetune_examples, c.loss, "ats")
    assert ph.method == "ats" and ph.n_kept >= prepower.MIN_RUNS
    with pytest.raises(DataError, match="unknown pre-power method"):
        prepower.power_phase(c.finetune_examples, c.loss, "magic")


@pytest.mark.slow
def test_user_law_module_on_the_command_line_with_its_source_hash(tmp_path):
    (tmp_path / "my_laws.py").write_text(LAW_SOURCE)
    simulate().to_csv(tmp_path / "runs.csv", index=False)
    r = run_cli("fit", "runs.csv", "--law", "my_laws:rectified", "--out", "fit",
                "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "fit" / "fit.json").read_text())
    assert doc["law"] == "my_laws:rectified"
    assert doc["law_source"]["module"] == "my_laws"
    assert doc["law_source"]["function"] == "rectified"
    assert len(doc["law_source"]["sha256"]) == 64
    at = ["--at", "finetune_examples=1e7"]
    r = run_cli("predict", "fit", *at, cwd=tmp_path)             # never imports by itself
    assert r.returncode == 2 and "law my_laws:rectified" in r.stderr
    assert "Traceback" not in r.stderr
    r = run_cli("predict", "fit", *at, "--law", "my_laws:rectified", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "1.1" in r.stdout                                     # close to E at D = 1e7
    (tmp_path / "my_laws.py").write_text(LAW_SOURCE.replace('+ p["E"]', '+ 1.0 * p["E"]'))
    r = run_cli("predict", "fit", *at, "--law", "my_laws:rectified", cwd=tmp_path)
    assert r.returncode == 2 and "has changed since this fit" in r.stderr
    r = run_cli("fit", "runs.csv", "--law", "my_laws:nothing", cwd=tmp_path)
    assert r.returncode == 2 and "has no 'nothing'" in r.stderr


def test_a_law_of_d_alone_with_base_rows_is_plotted(tmp_path):
    from lawfit.plot import plot_fit
    frame = simulate()
    res = lawfit.fit(frame, "rectified", by=[])
    paths = plot_fit(res, frame, tmp_path, formats=("png",))
    assert [p.name for p in paths] == ["fit.png"] and paths[0].stat().st_size > 10_000


@pytest.mark.slow
def test_user_law_joint_fit_shares_and_fixes_parameters():
    a, b = simulate(seed=4), simulate(seed=5)
    b = b.assign(loss=b.loss + 0.3 * 40.0 / (30.0 + b.finetune_examples ** 0.45))  # larger B
    frame = pd.concat([a.assign(subset="a"), b.assign(subset="b")], ignore_index=True)
    res = lawfit.fit(frame, my_rectified, by=[], joint="subset", share=["E", "beta"],
                     objective="mse-log")
    ga, gb = res.groups
    assert ga.params["E"] == gb.params["E"] and ga.params["beta"] == gb.params["beta"]
    assert gb.params["B"] > ga.params["B"]
    assert np.isclose(ga.params["beta"], TRUTH["beta"], atol=0.05)
    fixed = lawfit.fit(a, my_rectified, by=[], fixed={"E": 1.1}, objective="mse-log")
    assert fixed.groups[0].params["E"] == 1.1

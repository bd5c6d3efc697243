"""Least-squares fits: parameter recovery, the sum-vs-mean trap, bootstrap, joint fits, VarPro."""
import jax
import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize

import lawfit
from lawfit import lsq
from lawfit.errors import DataError
from lawfit.laws import get_law
from lawfit.numerics import float64
from lawfit.objectives import Objective
from lawfit.simulate import paper_grid, simulate

CHIN = dict(A=406.4, B=410.7, E=1.69, alpha=0.34, beta=0.28)


def chinchilla_runs(noise=0.01, seed=0):
    grid = {"model_params": np.geomspace(7e7, 1.6e10, 12),
            "pretrain_tokens": np.geomspace(5e9, 5e11, 20)}
    return simulate("chinchilla", CHIN, grid, noise=noise, seeds=1, seed=seed)


@pytest.mark.parametrize("law,params,grid,tol", [
    ("multiplicative", dict(A=2.1e3, E=0.62, alpha=0.36, beta=0.081),
     {"model_params": [1e9, 2e9, 4e9, 8e9, 16e9], "finetune_examples": np.geomspace(8e3, 1e5, 8)},
     {"A": 0.5, "E": 0.03, "alpha": 0.05, "beta": 0.1}),
    ("additive", dict(A=3e2, B=6.0, E=0.6, alpha=0.3, beta=0.25),
     {"model_params": np.geomspace(1e8, 1e10, 6), "finetune_examples": np.geomspace(1e3, 1e6, 8)},
     {"A": 0.6, "B": 0.3, "E": 0.03, "alpha": 0.08, "beta": 0.08}),
    ("power", dict(A=8.0, E=1.2, alpha=0.35),
     {"finetune_examples": np.geomspace(1e2, 1e6, 25)},
     {"A": 0.3, "E": 0.03, "alpha": 0.08}),
])
def test_parameter_recovery(law, params, grid, tol):
    """Noisy synthetic runs (3 seeds, sd 0.002): every parameter within its stated relative tolerance."""
    df = simulate(law, params, grid, noise=0.002, seeds=3, seed=3, extra={"task": "t", "method": "m"})
    res = lawfit.fit(df, law)
    (g,) = res.groups
    assert g.status == "converged"
    assert g.n_points == len(df) // 3          # seeds averaged
    for name, rel in tol.items():
        assert abs(g.params[name] / params[name] - 1) < rel, (name, g.params[name], params[name])


@pytest.mark.slow
def test_chinchilla_recovery_with_huber_log():
    df = chinchilla_runs(noise=0.01)
    res = lawfit.fit(df, "chinchilla", bootstrap=100, seed=0)
    (g,) = res.groups
    assert res.objective.name == "huber-log" and res.objective.reduction == "sum"
    assert g.status == "converged"
    assert abs(g.params["alpha"] - CHIN["alpha"]) < 0.03
    assert abs(g.params["beta"] - CHIN["beta"]) < 0.03
    assert abs(g.params["E"] - CHIN["E"]) < 0.05
    lo, hi = g.interval(0.95)
    assert (lo < g.estimate).all() and (g.estimate < hi).all()
    assert len(g.draws) >= 95


@pytest.mark.slow
def test_bootstrap_intervals_cover_the_truth():
    """90% percentile intervals over 6 independent datasets: each parameter covered at least 4
    times (P(<= 3 of 6) = 1.6% for a calibrated 90% interval)."""
    law = get_law("chinchilla")
    hits = np.zeros(law.n_params)
    for s in range(6):
        g = lawfit.fit(chinchilla_runs(noise=0.01, seed=100 + s), "chinchilla", bootstrap=100,
                       starts=300, seed=s).groups[0]
        lo, hi = g.interval(0.9)
        hits += [lo[j] <= CHIN[p] <= hi[j] for j, p in enumerate(law.params)]
    assert (hits >= 4).all(), dict(zip(law.params, hits))


@pytest.mark.slow
@float64     # computes with jax directly: in float64, as lawfit does (lawfit/numerics.py)
def test_sum_objective_avoids_the_mean_trap():
    """With a mean, objective and gradient shrink by 1/N and L-BFGS-B's default tolerances stop it
    early; the same solver on the sum gets much further; lawfit (a sum, and its own convergence
    test) reaches the best optimum of all."""
    law = get_law("chinchilla")
    df = chinchilla_runs(noise=0.02)
    lv = np.log(df[["model_params", "pretrain_tokens"]].to_numpy(float))
    y = df["loss"].to_numpy()
    total = lsq.Problem.simple(law, Objective("huber-log", 1e-3, "sum"), lv, y)
    reached = {}
    for red in ("sum", "mean"):
        prob = lsq.Problem.simple(law, Objective("huber-log", 1e-3, red), lv, y)
        data, w = lsq.solver_arrays(prob)
        value = lsq.full_objective(prob.objective)[0]
        f = jax.jit(lambda t: value(t, w, data))
        g = jax.jit(jax.grad(lambda t: value(t, w, data)))
        r = minimize(lambda t: float(f(t)), np.array([5.0, 5.0, 0.5, 0.5, 0.5]),
                     jac=lambda t: np.asarray(g(t)), method="L-BFGS-B")
        reached[red] = lsq.objective_value(total, r.x)
    ours = lawfit.fit(df, "chinchilla").groups[0].objective_value
    assert reached["mean"] > 3 * reached["sum"]          # stopped early
    assert ours <= reached["sum"] * (1 + 1e-9)
    assert ours < reached["mean"] / 3


def test_objective_value_is_the_sum_of_penalties():
    law = get_law("multiplicative")
    df = simulate(law, dict(A=2e3, E=0.6, alpha=0.35, beta=0.08),
                  {"model_params": [1e9, 4e9, 16e9], "finetune_examples": [1e4, 3e4, 1e5]},
                  noise=0.003, seeds=1)
    res = lawfit.fit(df, law, objective="huber", delta=1e-3)
    g = res.groups[0]
    pred = g.loss(df[["model_params", "finetune_examples"]].to_numpy(float))
    r = pred - df["loss"].to_numpy()
    hub = np.where(np.abs(r) <= 1e-3, 0.5 * r * r, 1e-3 * (np.abs(r) - 0.5e-3))
    assert np.isclose(g.objective_value, hub.sum(), rtol=1e-10)


@pytest.mark.slow
def test_bootstrap_is_reproducible_and_seeded():
    df = simulate("power", dict(A=8.0, E=1.2, alpha=0.35),
                  {"finetune_examples": np.geomspace(1e2, 1e6, 15)}, noise=0.01, seeds=2)
    a = lawfit.fit(df, "power", bootstrap=50, seed=7).draws
    b = lawfit.fit(df, "power", bootstrap=50, seed=7).draws
    c = lawfit.fit(df, "power", bootstrap=50, seed=8).draws
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["alpha"], c["alpha"])


def test_keep_seeds_resamples_configurations():
    df = simulate("power", dict(A=8.0, E=1.2, alpha=0.35),
                  {"finetune_examples": np.geomspace(1e2, 1e6, 10)}, noise=0.01, seeds=3)
    res = lawfit.fit(df, "power", seeds="keep", bootstrap=30)
    assert res.groups[0].n_points == 30
    # clusters are configurations: a resample holds whole configurations (all 3 seeds or none)
    w = lsq.bootstrap_weights(5, np.repeat(np.arange(10), 3), np.random.default_rng(0))
    assert np.all(w.reshape(5, 10, 3).std(axis=2) == 0)
    assert np.all(w.sum(axis=1) == 30)


@pytest.mark.slow
def test_varpro_reaches_the_same_optimum_as_newton():
    law = get_law("additive")
    df = simulate(law, dict(A=3e2, B=6.0, E=0.6, alpha=0.3, beta=0.25),
                  {"model_params": np.geomspace(1e8, 1e10, 6),
                   "finetune_examples": np.geomspace(1e3, 1e6, 8)}, noise=0.003, seeds=1)
    a = lawfit.fit(df, law, objective="mse").groups[0]
    b = lawfit.fit(df, law, objective="mse", solver="varpro").groups[0]
    assert b.status == "converged"
    assert np.isclose(a.objective_value, b.objective_value, rtol=1e-9)
    assert np.allclose(a.estimate, b.estimate, rtol=1e-4)
    with pytest.raises(DataError, match="varpro' needs objective 'mse'"):
        lawfit.fit(df, law, solver="varpro")


def test_joint_fit_shares_parameters_and_recovers_table4():
    """Zhang et al.'s stage 1 on the simulated paper grid: E and beta shared by the model-size and
    pretraining-size series, A and alpha per series."""
    df = paper_grid(noise=0.002, seeds=3, tasks=["wmt14_en_de"], methods=["lora"])
    df = df[df["factor"] != "pet_params"]
    res = lawfit.fit(df, "multiplicative", x="@factor", joint="factor", share=["E", "beta"])
    m = res.group(factor="model_params")
    p = res.group(factor="pretrain_tokens")
    assert m.status == p.status == "converged"
    assert m.params["E"] == p.params["E"] and m.params["beta"] == p.params["beta"]
    assert abs(m.params["beta"] - 0.081) < 0.01
    assert abs(m.params["E"] - 0.62) < 0.05
    assert abs(m.params["alpha"] - 0.36) < 0.05
    assert abs(p.params["alpha"] - 0.18) < 0.05
    assert m.ranges["x"] == (1e9, 16e9) and p.ranges["x"][0] == 84e9
    # the joint layout is (parameter, subset) pairs; "A[model_params]" is their display name only
    assert m.info["joint"]["free"] == ["E", "beta", "A[model_params]", "alpha[model_params]",
                                       "A[pretrain_tokens]", "alpha[pretrain_tokens]"]


def test_layout_pairs_and_status_enum():
    """A subset label with brackets is never parsed back out of a name; Status is a str enum whose
    JSON is the plain string."""
    import json

    from lawfit.problem import FreeParam, Status, build_layout
    law = get_law("multiplicative")
    lay = build_layout(law, ("a]b", "c[d"), share=("E",), fixed={"beta": 0.1})
    assert lay.free == (FreeParam("E"), FreeParam("A", "a]b"), FreeParam("alpha", "a]b"),
                        FreeParam("A", "c[d"), FreeParam("alpha", "c[d"))
    assert lay.free_names[1] == "A[a]b]" and lay.free_params == ("E", "A", "alpha", "A", "alpha")
    theta = np.arange(5.0)
    internal = lay.internal(theta)                       # (subsets, P) in law order A E alpha beta
    assert internal[0, :3].tolist() == [1.0, 0.0, 2.0] and internal[1, :3].tolist() == [3.0, 0.0, 4.0]
    assert np.allclose(internal[:, 3], 0.1)
    assert Status("grid_edge") is Status.GRID_EDGE and Status.CONVERGED == "converged"
    assert json.dumps([Status.AT_BOUND]) == '["at_bound"]' and f"{Status.POOR_FIT}" == "poor_fit"


def test_frozen_parameters_stay_frozen():
    df = paper_grid(noise=0.002, seeds=1, tasks=["wmt14_en_de"], methods=["lora"])
    pet = df[df["factor"] == "pet_params"]
    res = lawfit.fit(pet, "multiplicative", x="pet_params", fixed={"E": 0.62, "beta": 0.081})
    g = res.groups[0]
    assert g.params["E"] == pytest.approx(0.62) and g.params["beta"] == pytest.approx(0.081)
    assert abs(g.params["A"] - 1.4) < 0.1


def test_zhang2024_recipe_two_stages():
    from lawfit.analysis.recipes import zhang2024
    df = paper_grid(noise=0.002, seeds=1, tasks=["wmt19_en_zh"], methods=["prompt"])
    res = zhang2024(df)
    factors = sorted(g.key["factor"] for g in res.groups)
    assert factors == ["model_params", "pet_params", "pretrain_tokens"]
    e = {g.key["factor"]: g.params["E"] for g in res.groups}
    assert e["pet_params"] == pytest.approx(e["model_params"])    # frozen at stage 1


def test_boundary_optimum_is_reported_at_bound():
    """No floor in the data (E = 0): the optimum is E at its bound, reported as such, converged."""
    df = simulate("multiplicative", dict(A=30.0, E=1e-9, alpha=0.1, beta=0.1),
                  {"model_params": [1e8, 3e8, 1e9, 3e9], "finetune_examples": np.geomspace(1e3, 1e6, 7)},
                  noise=0.0005, seeds=1, seed=2)
    g = lawfit.fit(df, "multiplicative").groups[0]
    assert g.status == "at_bound"
    assert g.params["E"] < 1e-6
    assert any("E at the lower bound" in w for w in g.warnings)


def test_predict_flags_extrapolation_and_brackets_estimate():
    df = simulate("multiplicative", dict(A=2e3, E=0.6, alpha=0.35, beta=0.08),
                  {"model_params": [1e9, 2e9, 4e9, 8e9], "finetune_examples": np.geomspace(1e4, 1e5, 6)},
                  noise=0.003, seeds=2)
    res = lawfit.fit(df, "multiplicative", bootstrap=100)
    out = res.predict(pd.DataFrame({"model_params": [4e9, 16e9], "finetune_examples": [3e4, 3e4]}))
    assert list(out["extrapolated"]) == [False, True]
    assert (out["lo"] < out["prediction"]).all() and (out["prediction"] < out["hi"]).all()
    # the interval widens when extrapolating
    assert (out["hi"] - out["lo"]).iloc[1] > (out["hi"] - out["lo"]).iloc[0]
    truth = get_law("multiplicative").predict(dict(A=2e3, E=0.6, alpha=0.35, beta=0.08),
                                              x=np.array([4e9]), d=np.array([3e4]))[0]
    assert abs(out["prediction"].iloc[0] - truth) < 0.01


def test_convergence_flag_is_never_faked():
    """A start that has not reached a minimum is reported not converged, and the fit says so."""
    law = get_law("chinchilla")
    df = chinchilla_runs(noise=0.01)
    prob = lsq.Problem.simple(law, Objective("huber-log", 1e-3),
                              np.log(df[["model_params", "pretrain_tokens"]].to_numpy(float)),
                              df["loss"].to_numpy())
    far = np.array([[20.0, 20.0, 1.0, 1.5, 1.5]])
    short = lsq.multistart(prob, far, screen_steps=0, max_steps=3)
    assert not short.converged
    full = lsq.multistart(prob, far, screen_steps=0)
    assert full.converged and full.value < short.value
    from lawfit.problem import GroupProblem, build_layout
    status, warnings = lsq.lsq_status(short, GroupProblem(prob, build_layout(law)))
    assert status == "not_converged" and "no start converged" in warnings[0]


def test_column_specs_and_group_matching_are_one_code_path():
    """``@COL`` reads, per row, the column named in COL; a group's key matches a table's rows and a
    caller's values as text (fit.json keys are text)."""
    from lawfit.table import column_for, column_values, key_matches, rows_matching
    df = pd.DataFrame({"factor": ["n", "d", "n"], "n": [1.0, 9.0, 3.0], "d": [7.0, 5.0, 8.0],
                       "seed": [1, 2, 3]})
    assert column_values(df, "@factor").tolist() == [1.0, 5.0, 3.0]
    assert column_for("@factor", {"factor": "d"}) == "d" and column_for("n", {}) == "n"
    assert key_matches({"seed": 2, "factor": "d"}, {"seed": "2"})
    assert not key_matches({"seed": 2}, {"seed": "3"})
    assert rows_matching(df, {"seed": "3", "factor": "n"}).tolist() == [False, False, True]
    with pytest.raises(DataError, match="named in 'factor'"):
        column_values(df.assign(factor=["n", "zz", "n"]), "@factor")

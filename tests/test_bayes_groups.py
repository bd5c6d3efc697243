"""Bayesian fits of several groups with their NUTS chains vectorised (lawfit.bayes.fit_problems,
sample_groups): each group's posterior is its own, whatever company and padding it is sampled
with, and agrees in distribution with the group-by-group fit."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import lawfit
from lawfit.bayes import build_model, inference, init_values, lsq_optimum
from lawfit.errors import DataError
from lawfit.laws import get_law
from lawfit.numerics import float64
from lawfit.objectives import make_objective
from lawfit.problem import build_layout, group_problem
from lawfit.simulate import simulate

TRUTHS = [{"A": 300.0, "E": 0.6, "alpha": 0.3, "beta": 0.1},
          {"A": 150.0, "E": 0.5, "alpha": 0.25, "beta": 0.12},
          {"A": 400.0, "E": 0.7, "alpha": 0.35, "beta": 0.08}]


def runs(i: int, n_examples: int, seed: int) -> pd.DataFrame:
    """Group ``t{i}``: 4 model sizes x ``n_examples`` finetuning sizes of truth ``i``."""
    grid = {"model_params": [1e8, 3e8, 1e9, 3e9],
            "finetune_examples": list(np.geomspace(1e3, 3e5, n_examples))}
    return simulate("multiplicative", TRUTHS[i], grid, noise=0.01, seeds=1, seed=seed,
                    extra={"task": f"t{i}", "method": "lora"})


def problem(frame: pd.DataFrame):
    law = get_law("multiplicative")
    layout = build_layout(law, (None,), (), {})
    return group_problem(law, make_objective(None, None, law), layout,
                         frame[["model_params", "finetune_examples"]].to_numpy(float),
                         frame["loss"].to_numpy(float), None)


@float64
def test_a_groups_draws_do_not_depend_on_its_company_or_padding():
    # group 1 (24 runs: padded to 64) alone, then second of three beside a group of 80 runs
    # (every group padded to 128): its own data, start, seed and adaptation give the same
    # draws, so neither the company nor the masked padding runs leak into a group's posterior
    groups = [problem(runs(0, 6, 1)), problem(runs(1, 6, 2)), problem(runs(2, 20, 3))]
    kw = {"chains": 2, "warmup": 150, "draws": 150}
    rng = np.random.default_rng(0)
    models = [build_model(g.problem, g.layout.free_names) for g in groups]
    inits = [init_values(m, lsq_optimum(g, rng).theta) for m, g in zip(models, groups)]
    seeds = [11, 12, 13]
    assert [int(m.padded()[1].shape[0]) for m in models] == [64, 64, 128]
    alone = inference.sample_groups(models[1:2], inits=inits[1:2], seeds=seeds[1:2], **kw)[0]
    together = inference.sample_groups(models, inits=inits, seeds=seeds, **kw)
    assert alone.u.shape == together[1].u.shape == (2, 150, 6)
    assert alone.groups == 1 and together[1].groups == 3
    np.testing.assert_array_equal(alone.u, together[1].u)
    for k in alone.stats:
        np.testing.assert_array_equal(alone.stats[k], together[1].stats[k])
    # the groups are not copies of each other: each sampled its own posterior
    means = [t.params["alpha"].mean() for t in together]
    assert len({round(float(m), 3) for m in means}) == 3, means
    with pytest.raises(ValueError, match="one structure"):
        other = build_model(groups[0].problem, groups[0].layout.free_names,
                            likelihood="normal")
        inference.sample_groups([models[0], other], inits=[{}, {}], seeds=[0, 1], **kw)


def test_vectorize_groups_option_is_checked():
    frame = pd.concat([runs(0, 6, 1), runs(1, 6, 2)], ignore_index=True)
    with pytest.raises(DataError, match="vectorize_groups must be"):
        lawfit.fit(frame, "multiplicative", fitter="bayes",
                   bayes_options={"vectorize_groups": "yes"})
    with pytest.raises(DataError, match="lawfit driver"):
        lawfit.fit(frame, "multiplicative", fitter="bayes",
                   bayes_options={"vectorize_groups": True, "driver": "numpyro"})


@pytest.mark.slow
def test_vectorised_and_one_by_one_posteriors_agree_per_group():
    # three groups of 24, 16 and 80 runs (two shape buckets: 64 and 128 padded runs)
    frame = pd.concat([runs(0, 6, 11), runs(1, 4, 12), runs(2, 20, 13)], ignore_index=True)
    opts = {"warmup": 1000, "draws": 1000}    # r_hat <= 1.01 is checked: 500 left it at 1.0108 by chance (one seed)
    one = lawfit.fit(frame, "multiplicative", fitter="bayes", seed=3,
                     bayes_options=opts | {"vectorize_groups": False})
    vec = lawfit.fit(frame, "multiplicative", fitter="bayes", seed=3,
                     bayes_options=opts | {"vectorize_groups": True})
    assert one.settings["vectorized_groups"] is False and vec.settings["vectorized_groups"]
    law = get_law("multiplicative")
    for g1, gv, n in zip(one.groups, vec.groups, (24, 16, 80)):
        assert g1.key == gv.key and g1.n_points == gv.n_points == n
        s1, sv = g1.info["sampler"], gv.info["sampler"]
        assert s1["vectorized_groups"] == 1 and s1["chain_method"] == "sequential"
        assert sv["vectorized_groups"] == (2 if n < 64 else 1)
        assert sv["chain_method"] == "vectorized"
        assert s1["seed"] == sv["seed"]                  # the same seed per group either way
        for g in (g1, gv):
            d = g.info["diagnostics"]
            assert g.status == "converged", (g.key, d)
            assert d["r_hat_max"] <= 1.01 and d["divergences"] == 0, (g.key, d)
            assert g.draws.shape == (4000, 4)
        a, b = law.to_internal(g1.draws), law.to_internal(gv.draws)
        ess = min(g1.info["diagnostics"]["ess_bulk_min"], gv.info["diagnostics"]["ess_bulk_min"])
        se = np.sqrt(a.var(axis=0) / ess + b.var(axis=0) / ess)
        z = np.abs(a.mean(axis=0) - b.mean(axis=0)) / se
        assert np.all(z < 4.5), (g1.key, z)
        # the groups differ: a group's posterior is its own, near its own truth
        truth = law.to_internal(np.array([[TRUTHS[int(g1.key["task"][1])][p]
                                           for p in law.params]]))[0]
        sd = b.std(axis=0)
        assert np.all(np.abs(b.mean(axis=0) - truth) < 5 * sd + 1e-9), (g1.key, truth)

"""Bayesian fitter: calibration on synthetic data, agreement with the bootstrap on real runs,
the artefact (posterior.nc + diagnostics in fit.json), law comparison, priors.

Datasets share one shape (24 runs, multiplicative law) and the default sampler settings where
possible, so that one compiled sampler serves most tests (compilation dominates on 2 cores).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import Recorder
from conftest import require_reference as reference
from scipy.stats import binom

import lawfit
from lawfit import bayes
from lawfit.cli.main import main
from lawfit.errors import DataError
from lawfit.io.priors import read_priors
from lawfit.numerics import float64
from lawfit.simulate import simulate

ROOT = Path(__file__).resolve().parents[1]
TRUTH = {"A": 300.0, "E": 0.6, "alpha": 0.3, "beta": 0.1}
GRID = {"model_params": [1e8, 3e8, 1e9, 3e9], "finetune_examples": [1e3, 3e3, 1e4, 3e4, 1e5, 3e5]}
NOISE = 0.01




def synthetic(seed: int) -> pd.DataFrame:
    return simulate("multiplicative", TRUTH, GRID, noise=NOISE, seeds=1, seed=seed,
                    extra={"task": "demo", "method": "lora"})


@pytest.mark.slow
def test_calibration_central_90_intervals_cover_the_truth():
    """10 datasets x 4 parameters = 40 central 90% intervals. Under calibration the number that
    cover is Binomial(40, 0.9) (mean 36) if intervals were independent; those of one dataset are
    correlated, which widens the spread, so the acceptance region is generous: 29..40 covers
    (P(X <= 28) = 0.4% under the binomial). A sampler that ignores the noise scale or a wrong
    interval (e.g. 50% central) fails: it covers ~20."""
    repeats, covered, total = 10, 0, 0
    per_param = dict.fromkeys(TRUTH, 0)
    for r in range(repeats):
        res = lawfit.fit(synthetic(100 + r), "multiplicative", fitter="bayes", seed=r,
                         level=0.9)
        g = res.groups[0]
        lo, hi = g.interval(0.9)
        for j, p in enumerate(g.law.params):
            hit = lo[j] <= TRUTH[p] <= hi[j]
            covered += hit
            per_param[p] += hit
            total += 1
        assert g.interval_method == "posterior" and len(g.draws) == 4000
        assert g.info["diagnostics"]["r_hat_max"] < 1.05
    assert binom.cdf(28, 40, 0.9) < 0.005
    assert 29 <= covered <= 40, (covered, per_param)
    assert all(v >= 6 for v in per_param.values()), per_param


@pytest.mark.slow
def test_posterior_object_diagnostics_and_draws_interface():
    rec = Recorder()
    res = lawfit.fit(synthetic(7), "multiplicative", fitter="bayes", seed=1, progress=rec)
    # NUTS shows its progress per chain: 4 chains counted, each one advanced as it finished
    assert ("NUTS", 4, "chain", 4) in rec.counts, rec.counts
    g = res.groups[0]
    post = g.posterior
    for group in ("posterior", "posterior_predictive", "log_likelihood", "observed_data",
                  "sample_stats", "constant_data"):
        assert group in post.children, group
    assert post.posterior.sizes["chain"] == 4 and post.posterior.sizes["draw"] == 1000
    # observed data in the objective's residual space (huber: the loss itself)
    np.testing.assert_allclose(np.asarray(post.observed_data["loss"]),
                               synthetic(7)["loss"].to_numpy())
    d = g.info["diagnostics"]
    assert set(d) >= {"r_hat_max", "ess_bulk_min", "ess_tail_min", "divergences", "seconds"}
    assert d["r_hat_max"] <= 1.01 and d["ess_bulk_min"] >= 400, d
    assert g.status == "converged" and not g.warnings
    # the priors used are stated (E's default is scaled to the data: mean the smallest loss)
    assert g.info["priors"]["E"]["prior"] == (
        f"Gamma(concentration=2, rate={2 / synthetic(7)['loss'].min():g})")
    assert set(g.info["sampler"]["centred"]) == {"A", "E"}
    assert g.info["priors"]["nu"]["prior"].startswith("Gamma")
    # draws feed the same interface as the bootstrap: natural parameters, predictions
    assert g.draws.shape == (4000, 4)
    np.testing.assert_allclose(g.estimate, np.median(g.draws, axis=0), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(post.posterior["alpha"]).ravel(), g.draws[:, 2])
    pred = res.predict({"model_params": [1.6e10], "finetune_examples": [1e6]})
    truth = lawfit.get_law("multiplicative").predict(TRUTH, x=np.array([1.6e10]),
                                                       d=np.array([1e6]))[0]
    assert pred["lo"][0] < pred["prediction"][0] < pred["hi"][0]
    assert pred["lo"][0] < truth < pred["hi"][0]
    # warnings are not a silent pass
    bad = bayes.diagnostic_warnings({"r_hat_max": 1.05, "ess_bulk_min": 100,
                                     "ess_tail_min": 500, "divergences": 3})
    assert len(bad) == 3


@pytest.mark.slow
def test_bayes_and_bootstrap_agree_on_lin2024_opt():
    frame = pd.read_csv(reference("lin2024", "lin2024_wmt19.csv"))
    frame = frame[(frame["family"] == "OPT") & (frame["finetune_examples"] > 0)]
    kw = dict(level=0.95, seed=0)
    post = lawfit.fit(frame, "multiplicative", fitter="bayes", **kw).groups[0]
    boot = lawfit.fit(frame, "multiplicative", bootstrap=300, **kw).groups[0]
    (blo, bhi), (plo, phi) = boot.interval(0.95), post.interval(0.95)
    rows = []
    for j, p in enumerate(post.law.params):
        gap = abs(post.estimate[j] - boot.estimate[j])
        width = max(bhi[j] - blo[j], phi[j] - plo[j])
        rows.append((p, boot.estimate[j], blo[j], bhi[j], post.estimate[j], plo[j], phi[j]))
        assert gap <= width, (p, rows)
        # the intervals overlap
        assert max(blo[j], plo[j]) <= min(bhi[j], phi[j]), (p, rows)
    assert post.interval_method == "posterior" and boot.interval_method == "bootstrap"


@pytest.mark.slow
def test_cli_fit_bayes_writes_posterior_and_diagnostics(tmp_path, capsys):
    runs = tmp_path / "runs.csv"
    synthetic(11).to_csv(runs, index=False)
    out = tmp_path / "fit"
    assert main(["fit", str(runs), "--fitter", "bayes", "--out", str(out), "--quiet"]) == 0
    doc = json.loads((out / "fit.json").read_text())
    g = doc["groups"][0]
    assert doc["fitter"] == "bayes"
    assert g["interval"]["method"] == "posterior" and g["interval"]["draws"] == 4000
    assert {"r_hat_max", "ess_bulk_min", "ess_tail_min", "divergences",
            "seconds"} <= set(g["diagnostics"])
    assert "priors" in g["info"]
    assert (out / "posterior.nc").stat().st_size > 0
    # the NetCDF holds the arviz groups and loads back with the fit
    from lawfit.io.artefacts import load_fit
    back = load_fit(out)
    pg = back.groups[0].posterior
    assert pg is not None
    assert {"posterior", "posterior_predictive", "log_likelihood",
            "observed_data"} <= set(pg.children)
    assert pg.posterior.sizes["draw"] == 1000
    np.testing.assert_allclose(np.asarray(pg.posterior["beta"]).ravel(),
                               back.groups[0].draws[:, 3])
    # a later least-squares fit into the same directory leaves no stale posterior behind
    assert main(["fit", str(runs), "--out", str(out), "--overwrite", "--quiet"]) == 0
    assert not (out / "posterior.nc").exists()


@pytest.mark.slow
def test_compare_ranks_the_true_law_first(tmp_path, capsys):
    runs = tmp_path / "runs.csv"
    synthetic(21).to_csv(runs, index=False)
    out = tmp_path / "cmp"
    assert main(["compare", str(runs), "--laws", "additive,multiplicative", "--out", str(out),
                 "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "PSIS-LOO" in text and "heldout_mae" in text
    rows = json.loads((out / "compare.json").read_text())["rows"]
    best = min(rows, key=lambda r: r["rank"])
    assert best["law"] == "multiplicative", rows
    other = [r for r in rows if r["law"] == "additive"][0]
    assert other["elpd_diff"] < 0 and other["heldout"]["mae"] > best["heldout"]["mae"]
    assert best["weight"] > 0.5
    assert all("pareto_k_max" in r for r in rows)


@float64     # computes with jax directly: in float64, as lawfit does (lawfit/numerics.py)
def test_priors_override_and_toml(tmp_path):
    import numpyro.distributions as dist
    law = lawfit.get_law("multiplicative")
    pr = bayes.resolve_priors(law, ("E", "beta", "A[x]", "alpha[x]", "A[y]", "alpha[y]"),
                              ("E", "beta", "A", "alpha", "A", "alpha"),
                              {"A": dist.LogNormal(5.0, 1.0), "A[y]": dist.LogNormal(1.0, 1.0)})
    d = pr.as_dict()
    assert d["A[x]"]["prior"] == "LogNormal(loc=5, scale=1)"
    assert d["A[y]"]["prior"] == "LogNormal(loc=1, scale=1)"
    assert d["alpha[x]"]["source"] == "default"
    with pytest.raises(DataError, match="positive axis"):
        bayes.resolve_priors(law, law.params, law.params, {"E": dist.Normal(0.0, 1.0)})
    with pytest.raises(DataError, match="unknown parameter"):
        bayes.resolve_priors(law, law.params, law.params, {"gamma": dist.Normal(0.0, 1.0)})
    good = tmp_path / "priors.toml"
    good.write_text('E = { dist = "LogNormal", loc = -0.5, scale = 0.5 }\n'
                    'alpha = { dist = "Normal", loc = 0.3, scale = 0.1 }\n')
    got = read_priors(good)
    assert isinstance(got["E"], dist.LogNormal) and float(got["alpha"].scale) == 0.1
    # the file's prior is the one the model uses: the potential moves by exactly the change in
    # the prior's log density (sampling with it would need another compilation)
    import jax.numpy as jnp
    p = _problem()
    base = bayes.build_model(p, law.params)
    pinned = bayes.build_model(p, law.params, priors=got)
    vals = {"A": 300.0, "E": 0.6, "alpha": 0.3, "beta": 0.1, "sigma": 0.01, "nu": 5.0}
    data = {k: jnp.asarray(v) for k, v in base.data.items()}
    u = jnp.asarray(base.unconstrain(vals))
    diff = float(pinned.potential(u, data, jnp.asarray(base.obs))
                 - base.potential(u, data, jnp.asarray(base.obs)))
    expect = -(float(got["E"].log_prob(0.6)) + float(got["alpha"].log_prob(0.3))
               - float(dist.Gamma(2.0, 2.0 / float(p.y.min())).log_prob(0.6))
               - float(dist.Normal(0.0, 1.0).log_prob(0.3)))
    assert math.isclose(diff, expect, rel_tol=1e-9)
    assert pinned.priors.as_dict()["E"]["prior"] == "LogNormal(loc=-0.5, scale=0.5)"


@pytest.mark.parametrize("text, message", [
    ('E = { dist = "Lognormal", loc = 0, scale = 1 }', "unknown distribution"),
    ('E = { dist = "LogNormal", loc = 0, scale = -1 }', "bad arguments"),
    ('E = "LogNormal(0, 1)"', "must be a table"),
    ('E = { dist = "LogNormal", loc = 0, scale = 1 ', "cannot read priors"),
    ('gamma = { dist = "Normal", loc = 0, scale = 1 }', "unknown parameter"),
    ('E = { dist = "Normal", loc = 0, scale = 1 }', "positive axis"),
])
def test_bad_priors_file_exits_2(tmp_path, capsys, text, message):
    runs = tmp_path / "runs.csv"
    synthetic(1).head(12).to_csv(runs, index=False)
    bad = tmp_path / "priors.toml"
    bad.write_text(text + "\n")
    if message in ("unknown parameter", "positive axis"):
        # checked against the law: before any sampling, as a one-line error
        with pytest.raises(DataError, match=message):
            bayes.build_model(_problem(), ("A", "E", "alpha", "beta"),
                              priors=read_priors(bad))
        return
    assert main(["fit", str(runs), "--fitter", "bayes", "--priors", str(bad), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_compare_bad_input_exits_2(tmp_path, capsys):
    runs = tmp_path / "runs.csv"
    synthetic(1).to_csv(runs, index=False)
    for laws in ("multiplicative", "multiplicative,nonsense", "additive,additive"):
        assert main(["compare", str(runs), "--laws", laws, "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err


def _problem():
    from lawfit import lsq
    law = lawfit.get_law("multiplicative")
    f = synthetic(3)
    lv = np.log(f[["model_params", "finetune_examples"]].to_numpy(float))
    return lsq.Problem.simple(law, lawfit.make_objective("huber"), lv, f["loss"].to_numpy())


@float64     # computes with jax directly: in float64, as lawfit does (lawfit/numerics.py)
def test_weights_scale_the_noise_and_log_space_likelihood():
    p = _problem()
    law = p.law
    m = bayes.build_model(p, law.params, weights=np.full(p.n, 4.0), likelihood="normal")
    np.testing.assert_allclose(m.data["scale"], 0.5)
    assert "nu" not in m.priors.sites
    with pytest.raises(DataError, match="weights"):
        bayes.build_model(p, law.params, weights=np.zeros(p.n))
    # huber-log: the observed variable is log loss
    from lawfit import lsq
    pl = lsq.Problem.simple(law, lawfit.make_objective("huber-log"), p.log_vars, p.y)
    ml = bayes.build_model(pl, law.params)
    assert ml.obs_name == "log_loss"
    np.testing.assert_allclose(ml.obs, np.log(p.y))
    # the potential is numpyro's log density plus the support Jacobian: check at a point,
    # sampling every site in its own logs (centre=False) ...
    import jax
    import jax.numpy as jnp
    from scipy import stats
    vals = {"A": 300.0, "E": 0.6, "alpha": 0.3, "beta": 0.1, "sigma": 0.01, "nu": 5.0}
    plain = bayes.build_model(pl, law.params, centre=False)
    assert not any(plain.reparam)
    u = plain.unconstrain(vals)
    data = {k: jnp.asarray(v) for k, v in plain.data.items()}
    pot = float(plain.potential(jnp.asarray(u), data, jnp.asarray(plain.obs)))
    pred = np.log(law.predict(TRUTH, x=np.exp(p.log_vars[:, 0]), d=np.exp(p.log_vars[:, 1])))
    ll = stats.t.logpdf(np.log(p.y), 5.0, pred, 0.01).sum()
    e_mean = float(p.y.min())                  # E's default prior: Gamma(2), mean the smallest loss
    lp = (stats.lognorm.logpdf(300, 15) + np.log(300) + stats.gamma.logpdf(0.6, 2, scale=e_mean / 2)
          + np.log(0.6) + stats.norm.logpdf(0.3) + stats.norm.logpdf(0.1)
          + stats.halfnorm.logpdf(0.01, 0, 0.5) + np.log(0.01)
          + stats.gamma.logpdf(5.0, 2, scale=10) + np.log(5.0))
    assert math.isclose(pot, -(ll + lp), rel_tol=1e-9)
    # ... and centred (A and E as their terms' values at the centre of the data): the same
    # posterior density, times the Jacobian of the map from the sampler's coordinates to the
    # natural parameters, computed here by autodiff
    assert ml.reparam == (True, True, False, False)
    np.testing.assert_allclose(ml.data["shear"][0], [0, 0, *-p.log_vars.mean(axis=0)])
    uc = jnp.asarray(ml.unconstrain(vals))
    back, _ = ml.constrain(uc)
    np.testing.assert_allclose([float(back[k]) for k in vals], list(vals.values()), rtol=1e-9)
    sites = ml.priors.sites

    def natural(v):
        c, _ = ml.constrain(v)
        return jnp.stack([c[s] for s in sites])
    logjac = float(jnp.linalg.slogdet(jax.jacfwd(natural)(uc))[1])
    potc = float(ml.potential(uc, {k: jnp.asarray(v) for k, v in ml.data.items()},
                              jnp.asarray(ml.obs)))
    lp_nat = lp - np.log(300) - np.log(0.6) - np.log(0.01) - np.log(5.0)  # density in naturals
    assert math.isclose(potc, -(ll + lp_nat + logjac), rel_tol=1e-9)


@float64
def test_two_point_terms_keep_the_posterior_density():
    """``ends=True`` samples each term ``A X^-alpha`` of the additive law as its values at the two
    ends of the data (loss units): the sampler's coordinates change, the posterior does not. The
    natural-parameter density (potential minus the log-Jacobian of the map to the natural
    parameters, by autodiff) equals the plain model's at the same point, and the map inverts."""
    import jax
    import jax.numpy as jnp

    from lawfit import lsq
    law = lawfit.get_law("additive")
    truth = {"A": 300.0, "B": 5.0, "E": 0.6, "alpha": 0.3, "beta": 0.2}
    fr = simulate("additive", truth, GRID, noise=0.01, seeds=1, seed=1)
    lv = np.log(fr[["model_params", "finetune_examples"]].to_numpy(float))
    vals = truth | {"sigma": 0.01, "nu": 5.0}
    for objective in ("huber", "huber-log"):
        p = lsq.Problem.simple(law, lawfit.make_objective(objective), lv, fr["loss"].to_numpy())
        ends = bayes.build_model(p, law.params, ends=True)
        plain = bayes.build_model(p, law.params, centre=False)
        assert ends.pairs == ((0, 3), (1, 4)) and ends.reparam == (False, False, True, False,
                                                                   False)
        np.testing.assert_allclose(ends.data["anchor_g"][1], [-lv[:, 1].max(), -lv[:, 1].min()])
        densities = []
        for m in (ends, plain):
            u = jnp.asarray(m.unconstrain(vals))
            back, _ = m.constrain(u)
            np.testing.assert_allclose([float(back[k]) for k in vals], list(vals.values()),
                                       rtol=1e-9)

            def natural(v, m=m):
                return jnp.stack([m.constrain(v)[0][s] for s in m.priors.sites])
            logjac = float(jnp.linalg.slogdet(jax.jacfwd(natural)(u))[1])
            pot = float(m.potential(u, {k: jnp.asarray(v) for k, v in m.data.items()},
                                    jnp.asarray(m.obs)))
            densities.append(-pot - logjac)
        assert math.isclose(densities[0], densities[1], rel_tol=1e-10), densities

"""Bootstrap resamples of many groups refitted in one batched program (lawfit.batch.bootstrap_many):
each group's draws are those lawfit.lsq.bootstrap (or bootstrap_frozen) gives it alone, whatever
else is in the batch, and padded runs never count."""

import numpy as np
import pytest
from conftest import Recorder
from scipy.optimize import minimize
from test_batch import MULT, T1, T2, _curve, _frozen, _table

from lawfit import batch, lsq
from lawfit.laws import get_law
from lawfit.numerics import float64
from lawfit.objectives import make_objective

B = 12          # resamples per group


def _resample_objective(p, theta, w):
    """The objective of problem ``p`` at ``theta`` (F,) with resampling weights ``w`` (N,)."""
    data, w0 = lsq.solver_arrays(p)
    wb = np.zeros_like(w0)
    wb[: p.n] = w * w0[: p.n]
    return float(lsq.objective_fns(p)[0](theta, wb, data))


def _same_draws(p, w, got, want):
    """Same ok flags, and for each converged resample the same optimum: its objective within 1e-9
    relative of the reference's."""
    (d, ok), (d1, ok1) = got, want
    assert d.shape == d1.shape and ok.dtype == bool
    np.testing.assert_array_equal(ok, ok1)
    for b in np.flatnonzero(ok):
        fa = float64(_resample_objective)(p, d[b], w[b])
        fb = float64(_resample_objective)(p, d1[b], w[b])
        assert abs(fa - fb) <= 1e-9 * abs(fb), (b, fa, fb)


@pytest.fixture(scope="module")
def groups():
    """Four groups: 20 runs (two candidate starts), 9 runs, 17 runs (padded to 24, in the 24-run
    group's bucket), 24 runs, and one whose E is far below the noise (at its bound)."""
    small = _curve(MULT, 4, 5, T2, 0.003, 5)
    small = lsq.Problem.simple(MULT, small.objective, small.log_vars[:17], small.y[:17])
    probs = [_curve(MULT, 4, 5, T1, 0.003, 0), _curve(MULT, 3, 3, T2, 0.003, 1), small,
             _curve(MULT, 4, 6, T1, 0.003, 3), _curve(MULT, 4, 5, T1 | {"E": 1e-9}, 0.003, 4)]
    fits = batch.solve_many(probs, [MULT.grid()] * len(probs))
    cands = [f.candidates for f in fits]
    # a second candidate start for the first group: each resample keeps its best converged refit
    cands[0] = np.vstack([cands[0][:1], cands[0][0] + np.array([0.5, -0.3, 0.05, -0.02])])
    rng = np.random.default_rng(7)
    weights = [lsq.bootstrap_weights(B, np.arange(p.n), rng) for p in probs]
    return probs, fits, cands, weights


def test_batched_bootstrap_gives_each_groups_own_draws(groups):
    probs, fits, cands, weights = groups
    # the fifth group is at its bound (E's scale at its floor)
    e = MULT.params.index("E")
    assert fits[4].theta[e] <= probs[4].lower_bounds()[e] + 2.0
    counted = []
    many = batch.bootstrap_many(probs, cands, weights, progress=counted.append)
    assert sum(counted) == B * len(probs)
    for p, c, w, got in zip(probs, cands, weights, many):
        _same_draws(p, w, got, lsq.bootstrap(p, c, w))
        assert got[1].mean() > 0.9


def test_a_groups_draws_do_not_depend_on_the_other_groups(groups):
    """Alone, in another order with other groups, and in chunks of 16 rows: the same draws."""
    probs, _, cands, weights = groups
    alone = batch.bootstrap_many(probs[2:3], cands[2:3], weights[2:3])[0]
    crowd = batch.bootstrap_many(probs[::-1], cands[::-1], weights[::-1])[2]
    _same_draws(probs[2], weights[2], crowd, alone)
    tiny = batch.bootstrap_many(probs[:3], cands[:3], weights[:3], row_bytes=1)
    small = batch.bootstrap_many(probs[:3], cands[:3], weights[:3], row_bytes=16 * 8 * 5000)
    for p, w, a, b in zip(probs, weights, tiny, small):
        _same_draws(p, w, a, b)


def _rectified(n, seed):
    """A jax (autodiff) law on n runs: its padded runs (variables 1, loss 1) would change the
    objective's optimum if they were weighted."""
    law = get_law("rectified")
    rng = np.random.default_rng(seed)
    d = np.geomspace(1e2, 1e5, n)
    y = (50.0 / (100.0 + d ** 0.6) + 1.0) * np.exp(rng.normal(0, 0.01, n))
    return lsq.Problem.simple(law, make_objective("mse-log", None, law), np.log(d)[:, None], y)


@float64
def test_padded_runs_never_count_in_a_batched_draw(groups):
    """A 17-run group padded to 24 (next to a 24-run group) and an 11-run jax-law group padded
    to 16: each draw minimises the objective of its own resampled runs, computed here with no
    padding at all (Nelder-Mead from the draw finds nothing lower), and equals lsq.bootstrap's."""
    probs, _, cands, weights = groups
    rect = _rectified(11, 2)
    assert lsq.padded_runs(rect.n) == 16 and lsq.padded_runs(probs[2].n) == 24
    rect_fit = lsq.multistart(rect, rect.law.grid())
    w_rect = lsq.bootstrap_weights(B, np.arange(rect.n), np.random.default_rng(1))
    got = batch.bootstrap_many([probs[3], probs[2], rect],
                               [cands[3], cands[2], rect_fit.candidates],
                               [weights[3], weights[2], w_rect])[1:]
    for p, w, (draws, ok) in zip([probs[2], rect], [weights[2], w_rect], got):
        assert ok.all()

        def own(theta, wb):
            lp = np.asarray(p.law.log_predict(theta, p.log_vars))
            r = lp - np.log(p.y) if p.objective.space == "log" else np.exp(lp) - p.y
            return float(np.sum(wb * np.asarray(p.objective.derivatives(r)[0])))

        for b in range(4):
            f0 = own(draws[b], w[b])
            assert abs(f0 - _resample_objective(p, draws[b], w[b])) <= 1e-12 * f0
            better = minimize(own, draws[b], args=(w[b],), method="Nelder-Mead",
                              options={"xatol": 1e-10, "fatol": 1e-16, "maxiter": 400})
            assert better.fun >= f0 * (1 - 1e-9), (b, better.fun, f0)
    _same_draws(rect, w_rect, got[1], lsq.bootstrap(rect, rect_fit.candidates, w_rect))


def test_frozen_value_draws_are_those_of_bootstrap_frozen():
    """Two-stage bootstraps: resample b refitted with its own frozen E, batched across groups,
    gives lawfit.lsq.bootstrap_frozen's draws for each group."""
    probs = [_curve(MULT, 4, 5, T2, 0.003, 2, fixed={"E": 1.7}),
             _curve(MULT, 3, 4, T1, 0.003, 8, fixed={"E": 0.8})]
    rng = np.random.default_rng(3)
    fits = batch.solve_many(probs, [MULT.grid()[:, [0, 2, 3]]] * 2)
    weights = [lsq.bootstrap_weights(B, np.arange(p.n), rng) for p in probs]
    fixed = [np.log(v * rng.uniform(0.97, 1.03, (B, 1))) for v in (1.7, 0.8)]
    many = batch.bootstrap_many(probs, [f.candidates for f in fits], weights, fixed)
    for p, f, w, fd, got in zip(probs, fits, weights, fixed, many):
        want = lsq.bootstrap_frozen(p, f.candidates, w, fd)
        np.testing.assert_array_equal(got[1], want[1])
        for b in np.flatnonzero(got[1]):
            own = lsq.Problem(p.law, p.objective, p.log_vars, p.y, p.slots, p.n_free, fd[b])
            fa = float64(_resample_objective)(own, got[0][b], w[b])
            fb = float64(_resample_objective)(own, want[0][b], w[b])
            assert abs(fa - fb) <= 1e-9 * abs(fb), (b, fa, fb)




def test_fit_refits_every_groups_resamples_together():
    """fit(by=..., bootstrap=B): the resamples of all groups are refitted in one batched call
    (recorded in settings and per group; one counted stage over all resamples), and each group's
    draws, intervals and health are those of fitting the groups one by one (same seed stream)."""
    import lawfit
    frame = _table()
    kw = {"by": ["curve"], "fixed": _frozen, "bootstrap": B, "seed": 3}
    rec = Recorder()
    together = lawfit.fit(frame, "multiplicative", progress=rec, **kw)
    one_by_one = lawfit.fit(frame, "multiplicative", batch=False, **kw)
    assert together.settings["bootstrap_batched"] is True
    assert one_by_one.settings["bootstrap_batched"] is False
    assert ("bootstrap", 5 * B, "resample", 5 * B) in rec.counts, rec.counts
    for a, b in zip(together.groups, one_by_one.groups):
        assert a.info["batch"]["bootstrap"] == "batched"
        assert a.info["bootstrap"] == b.info["bootstrap"]
        assert a.draws.shape == b.draws.shape and len(a.draws) >= B - 1
        np.testing.assert_allclose(a.draws, b.draws, rtol=1e-4, atol=1e-6)

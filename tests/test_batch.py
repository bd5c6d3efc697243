"""Groups batched into one compiled program (lawfit.batch): each group's fit is the one it gets
alone, padding never leaks into a result, and convergence is judged per group."""
from dataclasses import replace

import jax
import numpy as np
import pytest

from lawfit import batch, lsq
from lawfit.laws import get_law
from lawfit.numerics import float64
from lawfit.objectives import make_objective

MULT = get_law("multiplicative")


def _curve(law, n_x, n_d, truth, noise, seed, fixed=None):
    """A problem on an n_x x n_d design; ``fixed``: {param: value} frozen."""
    rng = np.random.default_rng(seed)
    x = np.geomspace(1e8, 8e9, n_x)
    d = np.geomspace(1e3, 1e5, n_d)
    lv = np.log(np.array([(a, b) for a in x for b in d]))
    y = np.exp(np.asarray(law.log_predict(law.to_internal(truth), lv)))
    y = y + rng.normal(0, noise, len(y))
    obj = make_objective("huber", 1e-3)
    if not fixed:
        return lsq.Problem.simple(law, obj, lv, y)
    free = [p for p in law.params if p not in fixed]
    phi_index = {p: i for i, p in enumerate(free)}
    fixed_names = [p for p in law.params if p in fixed]
    for j, p in enumerate(fixed_names):
        phi_index[p] = len(free) + j
    internal = law.to_internal({p: fixed.get(p, 1.0) for p in law.params})
    fixed_int = np.array([internal[law.params.index(p)] for p in fixed_names])
    slots = np.tile([phi_index[p] for p in law.params], (len(y), 1))
    return lsq.Problem(law, obj, lv, y, slots, len(free), fixed_int)


def _starts(problem, seed, n=48, frozen=()):
    """n random starts within the span of the law's grid, over the free parameters."""
    law = problem.law
    keep = [k for k, p in enumerate(law.params) if p not in frozen]
    grid = law.grid()[:, keep]
    return np.random.default_rng(seed).uniform(grid.min(axis=0), grid.max(axis=0),
                                               (n, len(keep)))


T1 = {"A": 300.0, "E": 0.8, "alpha": 0.3, "beta": 0.08}
T2 = {"A": 90.0, "E": 1.7, "alpha": 0.33, "beta": 0.05}


@pytest.fixture(scope="module")
def mixed():
    """Groups of different sizes, laws and numbers of free parameters (several shape buckets)."""
    probs = [_curve(MULT, 4, 5, T1, 0.003, 0),          # 20 runs
             _curve(MULT, 3, 3, T2, 0.003, 1),          # 9 runs
             _curve(MULT, 4, 5, T2, 0.003, 2, fixed={"E": 1.7}),   # 3 free parameters
             _curve(MULT, 4, 6, T1, 0.003, 3)]          # 24 runs: same bucket as the first
    starts = [_starts(p, i, frozen=("E",) if i == 2 else ()) for i, p in enumerate(probs)]
    return probs, starts


@pytest.mark.slow
def test_batched_and_one_by_one_give_the_same_optimum(mixed):
    probs, starts = mixed
    many = batch.multistart_many(probs, starts)
    for p, s, b in zip(probs, starts, many):
        one = lsq.multistart(p, s)
        assert one.converged and b.converged
        assert abs(b.value - one.value) <= 1e-9 * abs(one.value), (b.value, one.value)
        # the optimum is the problem's own: its objective evaluated at the batched estimate
        assert abs(lsq.objective_value(p, b.theta) - b.value) <= 1e-12 * abs(b.value)
        assert b.n_starts == len(s) and len(b.theta) == p.n_free


@pytest.mark.slow
@float64     # calls law.log_predict directly: in float64, as lawfit does (lawfit/numerics.py)
def test_padding_never_leaks_into_a_result(mixed):
    """A group's fit is unchanged by adding other groups of different sizes to the call, and by the
    zero-weight runs that pad it to the bucket's size."""
    probs, starts = mixed
    alone = batch.multistart_many(probs[:1], starts[:1])[0]
    crowd = batch.multistart_many(probs[::-1], starts[::-1])[-1]
    assert abs(crowd.value - alone.value) <= 1e-9 * abs(alone.value)
    np.testing.assert_allclose(crowd.theta, alone.theta, rtol=1e-6, atol=1e-8)
    # the first problem has 20 runs, padded to 24: its value is that of its own 20 runs
    p = probs[0]
    lp = np.asarray(p.law.log_predict(alone.theta, p.log_vars))
    r = np.exp(lp) - p.y
    huber = np.where(np.abs(r) <= 1e-3, 0.5 * r * r, 1e-3 * (np.abs(r) - 0.5e-3))
    assert abs(huber.sum() - alone.value) <= 1e-12 * alone.value


def test_convergence_is_judged_per_group():
    """With a step budget that one group's starts meet and another's do not, each group keeps its
    own flag and step count, exactly as fitted alone."""
    easy = _curve(MULT, 4, 5, T1, 0.003, 0)
    hard = _curve(MULT, 4, 5, T2, 0.01, 1)
    opt = lsq.multistart(easy, easy.law.to_internal(T1)[None], screen_steps=0).theta
    s_easy, s_hard = opt[None] + 1e-4, np.array([[20.0, 1.0, 2.0, 1.0]])
    kw = {"screen_steps": 0, "max_steps": 12}
    alone = [lsq.multistart(easy, s_easy, **kw), lsq.multistart(hard, s_hard, **kw)]
    assert alone[0].converged and not alone[1].converged
    both = batch.multistart_many([easy, hard, easy], [s_easy, s_hard, s_easy], **kw)
    assert [b.converged for b in both] == [True, False, True]
    assert both[0].steps == alone[0].steps < 12 and both[1].steps == 12
    assert abs(both[1].value - alone[1].value) <= 1e-9 * abs(alone[1].value)


@pytest.mark.slow
def test_memory_budget_splits_the_groups_into_chunks(mixed):
    """A tiny budget (one group per screening chunk) gives the same results."""
    probs, starts = mixed
    big = batch.multistart_many(probs, starts)
    small = batch.multistart_many(probs, starts, budget=1)
    for a, b in zip(big, small):
        assert abs(a.value - b.value) <= 1e-9 * abs(a.value)


# --- fit() solves many groups together (lawfit.batch.solve_groups / solve_many) ------------------

def _table():
    """Five finetuning curves: 20, 9, 24, 17 runs (9 and 17 pad to 16 and 24: the 17-run curve
    shares the 24-run curve's bucket, with 7 padded runs), and one with E far below its losses'
    noise floor (status at_bound)."""
    import pandas as pd

    from lawfit.simulate import simulate
    frames = []
    specs = [(T1, 4, 5), (T2, 3, 3), (T1, 4, 6), (T2, 4, 5), (T1 | {"E": 1e-9}, 4, 5)]
    for i, (truth, nx, nd) in enumerate(specs):
        grid = {"model_params": np.geomspace(1e8, 8e9, nx),
                "finetune_examples": np.geomspace(1e3, 1e5, nd)}
        f = simulate("multiplicative", truth, grid, noise=0.003, seeds=1, seed=i,
                     extra={"curve": f"c{i}"})
        frames.append(f.iloc[:17] if i == 3 else f)
    return pd.concat(frames, ignore_index=True)


def _frozen(key):
    return {"E": 1.7} if key["curve"] == "c1" else {}     # c1: 3 free parameters


@pytest.fixture(scope="module")
def fitted_both_ways():
    import lawfit
    frame = _table()
    kw = {"by": ["curve"], "fixed": _frozen}
    return (frame, lawfit.fit(frame, "multiplicative", **kw),
            lawfit.fit(frame, "multiplicative", batch=False, **kw))


def test_fit_solves_the_groups_together_with_each_groups_own_optimum(fitted_both_ways):
    """fit() batches the groups (recorded in settings and per group), and every group's optimum,
    status and free parameters are those of fitting the groups one by one (the objective within
    1e-9 relative), with a frozen parameter and different run counts in the same call."""
    _, together, one_by_one = fitted_both_ways
    assert together.settings["batched"] is True and one_by_one.settings["batched"] is False
    assert len(together.groups) == 5
    for a, b in zip(together.groups, one_by_one.groups):
        assert a.key == b.key
        assert a.info["batch"]["refined"] >= 1 and "batch" not in b.info
        assert a.status == b.status, (a.key, a.status, b.status)
        assert abs(a.objective_value - b.objective_value) <= 1e-9 * abs(b.objective_value), \
            (a.key, a.objective_value, b.objective_value)
        np.testing.assert_allclose(a.estimate, b.estimate, rtol=1e-4)
        # described alike too (batched: quality.structure_many over every group at once)
        assert a.warnings == b.warnings and a.n_points == b.n_points and a.ranges == b.ranges
        _same(a.info["fit_quality"], b.info["fit_quality"], "fit_quality")
    by_key = {g.key["curve"]: g for g in together.groups}
    assert by_key["c4"].status == "at_bound" and by_key["c0"].status == "converged"
    assert by_key["c1"].estimate[MULT.params.index("E")] == pytest.approx(1.7)
    assert by_key["c1"].info["frozen"] == {"E": 1.7}


def test_padded_runs_never_count_in_a_batched_result(fitted_both_ways):
    """The 17-run curve, padded to 24 in the 24-run curve's bucket: its point count, residual
    degrees of freedom, per-run quality and objective are those of its own 17 runs."""
    frame, together, _ = fitted_both_ways
    g = {g.key["curve"]: g for g in together.groups}["c3"]
    assert g.n_points == 17 and g.info["residual"]["dof"] == 17 - 4
    assert g.info["fit_quality"]["n"] == 17
    runs = frame[frame["curve"] == "c3"]
    theta = MULT.to_internal(g.estimate)
    lv = np.log(runs[["model_params", "finetune_examples"]].to_numpy())
    r = np.exp(np.asarray(float64(MULT.log_predict)(theta, lv))) - runs["loss"].to_numpy()
    huber = np.where(np.abs(r) <= 1e-3, 0.5 * r * r, 1e-3 * (np.abs(r) - 0.5e-3))
    assert abs(huber.sum() - g.objective_value) <= 1e-9 * g.objective_value


def _same(a, b, path=""):
    """Nested dicts/lists equal, floats within 1e-6 relative (a batched optimum and the one-by-one
    optimum agree to about 1e-9, not to the bit)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), (path, a, b)
        for k in a:
            _same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), (path, a, b)
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and not isinstance(b, bool):
        assert b == pytest.approx(a, rel=1e-6, abs=1e-12, nan_ok=True), (path, a, b)
    else:
        assert a == b, (path, a, b)


def test_each_group_is_described_from_its_own_rows():
    """fit() takes the groups' runs from the table once, as arrays, and describes each group from
    them: with the groups' rows interleaved, a non-default index, two seeds per configuration, a
    duplicated row in one group and an identifying column, every group of a batched call is
    described as the same group fitted alone: points, seeds, ranges, warnings, status,
    residual scale and fit quality (structure tests, seeds' lack of fit, worst run)."""
    import pandas as pd

    import lawfit
    from lawfit.simulate import simulate
    frames = []
    for i, (truth, nx, nd) in enumerate([(T1, 4, 5), (T2, 4, 6), (T1 | {"E": 1.2}, 3, 5)]):
        grid = {"model_params": np.geomspace(1e8, 8e9, nx),
                "finetune_examples": np.geomspace(1e3, 1e5, nd)}
        frames.append(simulate("multiplicative", truth, grid, noise=0.003, seeds=2, seed=10 + i,
                               extra={"curve": f"c{i}", "family": f"f{i}"}))
    frames.append(frames[1].iloc[[3]])                  # c1: one row repeated
    frame = pd.concat(frames, ignore_index=True)
    perm = np.random.default_rng(0).permutation(len(frame))
    frame = frame.iloc[perm].set_index(np.arange(len(frame)) * 3 + 1000)
    together = lawfit.fit(frame, "multiplicative", by=["curve"])
    assert together.settings["batched"] is True and len(together.groups) == 3
    for g in together.groups:
        (alone,) = lawfit.fit(frame[frame["curve"] == g.key["curve"]], "multiplicative",
                              by=["curve"]).groups
        assert g.key == alone.key and g.status == alone.status
        assert g.n_points == alone.n_points and g.ranges == alone.ranges
        assert g.warnings == alone.warnings
        for k in ("n_seeds", "residual", "fit_quality", "scale_floor"):
            _same(g.info[k], alone.info[k], k)
    by_key = {g.key["curve"]: g for g in together.groups}
    assert [w for w in by_key["c1"].warnings if "repeats" in w]
    assert not [w for g in (by_key["c0"], by_key["c2"]) for w in g.warnings if "repeat" in w]
    assert by_key["c1"].n_points == 24 and by_key["c1"].info["n_seeds"] == 49
    assert by_key["c2"].info["fit_quality"]["seeds"] is not None
    worst = by_key["c0"].info["fit_quality"]["max_std_residual"]["run"]
    assert worst["family"] == "f0"


def test_a_groups_batched_fit_does_not_depend_on_its_company():
    """solve_many: a group's fit is the same alone and batched with a bigger group of its bucket
    (its 7 padded runs next to the other's 24 real ones) and with groups of other buckets."""
    small = _curve(MULT, 4, 5, T2, 0.003, 5)
    small = lsq.Problem.simple(MULT, small.objective, small.log_vars[:17], small.y[:17])
    big = _curve(MULT, 4, 6, T1, 0.003, 6)
    other = _curve(MULT, 3, 3, T1, 0.003, 7)
    grid = MULT.grid()
    alone = batch.solve_many([small], [grid])[0]
    crowd = batch.solve_many([big, other, small, big], [grid] * 4)
    assert crowd[2].converged and alone.converged
    assert abs(crowd[2].value - alone.value) <= 1e-9 * alone.value
    np.testing.assert_allclose(crowd[2].theta, alone.theta, rtol=1e-7, atol=1e-9)
    one = lsq.multistart(small, grid)
    assert abs(alone.value - one.value) <= 1e-9 * one.value
    # and chunks of one group each (a tiny screening budget) change nothing
    tiny = batch.solve_many([big, other, small, big], [grid] * 4, budget=1)
    for a, b in zip(crowd, tiny):
        assert abs(a.value - b.value) <= 1e-9 * abs(a.value)


def test_screening_without_projection_gives_the_same_optimum(mixed):
    """Problems that projection cannot screen (a frozen parameter) are screened by their
    objective values in float32 and reach the optimum of lawfit.lsq.multistart."""
    probs, starts = mixed
    p, s = probs[2], starts[2]                  # E frozen
    (b,) = batch.solve_many([p], [s])
    assert b.info["batch"]["screening"] == "float32 values"
    one = lsq.multistart(p, s)
    assert b.converged and abs(b.value - one.value) <= 1e-9 * abs(one.value)


def _simulated_curve(index, n_curves=1000, seed=0):
    """Curve ``index`` of benchmarks/bench_lsq.py's (c) table: the multiplicative law with
    parameters in Zhang et al.'s Table 4 ranges, 4 model x 5 data sizes, N(0, 0.005^2) noise."""
    rng = np.random.default_rng(seed)
    a = np.exp(rng.uniform(np.log(50), np.log(2000), n_curves))
    e = rng.uniform(0.5, 2.0, n_curves)
    alpha = rng.uniform(0.1, 0.5, n_curves)
    beta = rng.uniform(0.02, 0.15, n_curves)
    x = np.repeat((1e8, 4e8, 1.6e9, 6.4e9), 5)
    d = np.tile((1e3, 3e3, 1e4, 3e4, 1e5), 4)
    loss = (a[:, None] * x[None] ** -alpha[:, None] * d[None] ** -beta[:, None] + e[:, None]
            + rng.normal(0.0, 0.005, (n_curves, len(x))))
    return lsq.Problem.simple(MULT, make_objective("huber", 1e-3), np.log(np.c_[x, d]),
                              loss[index])


@float64
def test_majorizer_steps_converge_where_exact_newton_crawled():
    """20 curves of the benchmark's table (every 50th), from the projection screening's best 4
    starts each, 1,000 steps at most, no stall rule: Newton with the exact Hessian (curvature 0
    for every run beyond Huber's delta) crawls from kink to kink (9 of 80 starts ran all 1,000
    steps without converging; mean 242 steps); with the majorizer's steps (lsq._solver) every
    start converges (mean 104 steps)."""
    grid = MULT.grid()
    probs = [_simulated_curve(c) for c in range(0, 1000, 50)]
    fns = lsq.objective_fns(probs[0])
    exact = (fns[0], lambda *a: fns[1](*a))    # the same vgh without the majorizer attribute
    data, w = lsq.stacked_solver_arrays(probs)
    lb = np.stack([p.lower_bounds() for p in probs])
    theta0, _ = batch._screen(fns, probs, data, w, lb, np.stack([grid] * len(probs)), batch.KEEP)
    g, k, _ = theta0.shape
    rep = np.repeat(np.arange(g), k)
    rows = (theta0.reshape(g * k, 1, -1), np.repeat(w, k, axis=0),
            jax.tree_util.tree_map(lambda a: np.asarray(a)[rep], data), np.repeat(lb, k, axis=0),
            1000)
    _, _, conv_m, steps_m = lsq.iterate(fns, *rows, block=lsq.BLOCK)
    _, _, conv_e, steps_e = lsq.iterate(exact, *rows, block=lsq.BLOCK)
    assert conv_m.all() and steps_m.max() < 1000
    assert (steps_e >= 1000).sum() >= 3 and not conv_e.all()
    assert steps_m.mean() < 0.6 * steps_e.mean()


@float64
def test_curve_412_reaches_the_multistart_optimum():
    """Curve 412 of the benchmark's table, on which exact Newton from the screened starts ended
    10x above the optimum: solve_many reaches lsq.multistart's optimum (its first pass
    converged after 964 steps with LAPACK's eigenvectors; with the Jacobi eigenvectors of
    lsq.symmetric_eigh the stall rule stops it and the boundary stage converges)."""
    p = _simulated_curve(412)
    grid = MULT.grid()
    (b,) = batch.solve_many([p], [grid])
    one = lsq.multistart(p, grid)
    assert one.converged and b.converged
    assert abs(b.value - one.value) <= 1e-9 * one.value


@float64
def test_a_fit_whose_optimum_is_on_a_boundary_is_found_from_the_boundary():
    """Curve 223: the data cannot tell E from A X^-alpha (alpha = 0.4 leaves A X^-alpha below the
    noise); the optimum is at E -> 0, which Newton from the screened starts approaches along a
    curved valley in log E without converging. The boundary stage (E held at its floor in the
    projection) converges there, as low as the full multi-start."""
    p = _simulated_curve(223)
    grid = MULT.grid()
    (b,) = batch.solve_many([p], [grid])
    one = lsq.multistart(p, grid)
    assert b.converged and b.info["batch"]["fallback"] == "boundary"
    assert b.value <= one.value * (1 + 1e-9)
    e = MULT.params.index("E")
    assert b.theta[e] <= p.lower_bounds()[e] + 2.0          # effectively 0: lsq_status AT_BOUND


@float64
def test_a_fit_whose_screened_starts_do_not_converge_gets_the_full_multistart():
    """Curve 223 with Huber on log loss (not screened by projection: float32 values, and no
    boundary stage): the screened starts do not converge; solve_many then solves it as
    lsq.multistart does and keeps that."""
    p = replace(_simulated_curve(223), objective=make_objective("huber-log", 1e-3))
    grid = MULT.grid()
    (b,) = batch.solve_many([p], [grid])
    one = lsq.multistart(p, grid)
    assert one.converged and b.converged
    assert abs(b.value - one.value) <= 1e-9 * one.value
    assert b.info["batch"]["fallback"] == "multistart"


@float64
def test_a_start_crawling_along_a_valley_is_stopped():
    """Curve 223 from one of its screened starts: Newton approaches the optimum at E -> 0 along a
    curved valley, 1,000 steps without converging; with solve_many's stall rule the start stops
    once 32 steps gain less than 1e-3 of the objective (so the boundary stage comes sooner)."""
    p = _simulated_curve(223)
    data, w = lsq.solver_arrays(p)
    fns = lsq.objective_fns(p)
    start = np.array([[[-1.51, -0.238, 0.025, 0.012]]])
    args = (fns, start, w[None], jax.tree_util.tree_map(lambda a: np.asarray(a)[None], data),
            p.lower_bounds()[None], 1000)
    _, f_all, conv_all, steps_all = lsq.iterate(*args, block=lsq.BLOCK)
    _, f, conv, steps = lsq.iterate(*args, block=lsq.BLOCK, stall=batch.STALL)
    assert not conv_all[0, 0] and steps_all[0] == 1000
    assert not conv[0, 0] and steps[0] <= 256
    assert f[0, 0] <= f_all[0, 0] * (1 + 1e-2)

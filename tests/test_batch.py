"""Groups batched into one compiled program (lawfit.batch): each group's fit is the one it gets
alone, padding never leaks into a result, and convergence is judged per group."""
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

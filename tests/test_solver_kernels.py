"""The batched solver's row chunking (lawfit.lsq): chunks of starts do not change a fit."""
import numpy as np

from lawfit import lsq
from lawfit.laws import get_law
from lawfit.numerics import float64
from lawfit.objectives import make_objective


@float64
def test_row_chunking_does_not_change_a_fit(monkeypatch):
    """The solver vectorises ROW_CHUNK starts at a time; every start's trajectory is its own, so
    chunks of 16 and one chunk of all 1,296 starts give the same optimum and steps."""
    law = get_law("multiplicative")
    rng = np.random.default_rng(3)
    lv = np.log([(x, d) for x in np.geomspace(1e8, 8e9, 4) for d in np.geomspace(1e3, 1e5, 5)])
    truth = law.to_internal(dict(A=2.1e3, E=0.62, alpha=0.36, beta=0.081))
    y = np.exp(np.asarray(law.log_predict(truth, lv))) + rng.normal(0, 0.003, len(lv))
    prob = lsq.Problem.simple(law, make_objective("huber", 1e-3), lv, y)
    grid = law.grid()
    out = []
    for chunk in (16, 4096):
        monkeypatch.setattr(lsq, "ROW_CHUNK", chunk)
        lsq._solver.cache_clear()
        out.append(lsq.multistart(prob, grid))
    lsq._solver.cache_clear()
    a, b = out
    assert a.converged and b.converged
    assert abs(a.value - b.value) <= 1e-9 * abs(b.value)
    assert np.allclose(a.theta, b.theta, rtol=1e-7, atol=1e-9)

"""Traced solver programs kept between processes (lawfit/programs.py)."""
import jax
import numpy as np
import pytest

from lawfit import lsq, programs
from lawfit.laws import get_law
from lawfit.numerics import float64
from lawfit.objectives import make_objective

MULT = get_law("multiplicative")


def _problem(objective="huber"):
    rng = np.random.default_rng(5)
    lv = np.log([(x, d) for x in np.geomspace(1e8, 8e9, 4) for d in np.geomspace(1e3, 1e5, 5)])
    truth = MULT.to_internal(dict(A=2.1e3, E=0.62, alpha=0.36, beta=0.081))
    y = np.exp(np.asarray(float64(MULT.log_predict)(truth, lv))) + rng.normal(0, 0.003, len(lv))
    return lsq.Problem.simple(MULT, make_objective(objective, 1e-3), lv, y)


@pytest.fixture
def program_dir(tmp_path):
    programs.set_directory(tmp_path)
    lsq._solver.cache_clear()
    yield tmp_path
    programs.set_directory(None)
    lsq._solver.cache_clear()


def test_a_new_process_reuses_the_traced_solver_and_gets_the_same_fit(program_dir, monkeypatch):
    """The first fit writes the solver's traced programs; a fresh solver (as in a new process)
    deserializes them instead of tracing, and the fit is identical; another objective gets its
    own programs."""
    p = _problem()
    grid = MULT.grid()
    first = lsq.multistart(p, grid)
    files = sorted(program_dir.glob("*.jaxexport"))
    assert len(files) >= 2                      # start and advance, screening and refinement
    lsq._solver.cache_clear()
    loaded = []
    real = jax.export.deserialize
    monkeypatch.setattr(jax.export, "deserialize", lambda b: loaded.append(1) or real(b))
    monkeypatch.setattr(jax.export, "export", lambda *a, **k: pytest.fail("traced again"))
    again = lsq.multistart(p, grid)
    assert len(loaded) == len(files)
    assert again.value == first.value and np.array_equal(again.theta, first.theta)
    monkeypatch.undo()
    lsq.multistart(_problem("huber-log"), grid)
    assert len(list(program_dir.glob("*.jaxexport"))) > len(files)


def test_a_corrupt_program_file_is_traced_again(program_dir):
    p = _problem()
    grid = MULT.grid()
    first = lsq.multistart(p, grid)
    for f in program_dir.glob("*.jaxexport"):
        f.write_bytes(b"not a program")
    lsq._solver.cache_clear()
    again = lsq.multistart(p, grid)
    assert again.value == first.value
    assert all(f.stat().st_size > 100 for f in program_dir.glob("*.jaxexport"))

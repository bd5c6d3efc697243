"""The batched solver's row chunking (lawfit.lsq): chunks of starts do not change a fit."""
import jax
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


# a bootstrap refit that stalled: curve 26 of benchmarks/bench_lsq.py's curves_table(40, seed=2),
# resample 55, from the fit's optimum (the perf helper's repro; exact values)
STALL_START = [[5.6431922268792984, -0.4700481229750519, 0.12346515891287708, 0.08031078522045357]]
STALL_WEIGHTS = [1.0, 0.0, 0.0, 3.0, 1.0, 2.0, 0.0, 2.0, 1.0, 0.0, 0.0, 1.0, 3.0, 0.0, 2.0, 1.0, 0.0, 1.0, 0.0, 2.0]
STALL_Y = [
    17.31276265367956, 15.893742503515972, 14.48926525400326, 13.324127291586763,
    12.143769901528895, 14.67392074107208, 13.49226651556526, 12.303859462670157,
    11.325382425009426, 10.333781184413137, 12.464191271201093, 11.479508336549813,
    10.465375035602829, 9.638904965128866, 8.809476707865443, 10.608571315730734,
    9.762601037150715, 8.922654615377395, 8.219127702175339, 7.512863317224482]
STALL_LOG_VARS = np.log([(x, d) for x in (1e8, 4e8, 1.6e9, 6.4e9)
                          for d in (1e3, 3e3, 1e4, 3e4, 1e5)])


@float64
def test_a_flat_direction_does_not_stall_the_newton_step():
    """log E has zero gradient and zero curvature here (every residual beyond Huber's delta, their
    signs balanced): the rounding noise of the gradient along it, divided by its tiny Jacobi scale,
    made every step a 10-unit move in log E, rejected at any damping until the row stalled, not
    converged, with a gradient of 0.066. Noise-level components are now dropped: it converges."""
    law = get_law("multiplicative")
    p = lsq.Problem.simple(law, make_objective("huber", 1e-3), np.array(STALL_LOG_VARS),
                           np.array(STALL_Y))
    data, w0 = lsq.solver_arrays(p)
    w = w0.copy()
    w[: p.n] *= np.array(STALL_WEIGHTS)
    data1 = jax.tree_util.tree_map(lambda a: np.asarray(a)[None], data)
    theta, f, conv, steps = lsq.iterate(lsq.objective_fns(p), np.array(STALL_START)[None], w[None],
                                        data1, p.lower_bounds()[None], lsq.MAX_STEPS)
    assert conv[0, 0], (f, steps)
    assert f[0, 0] < 0.9 * 9.3354762e-05        # the stalled point's objective


@float64
def test_symmetric_eigh_decomposes_hard_small_matrices():
    """The solver's eigendecomposition (cyclic Jacobi for n <= 6, vectorised over a batch):
    random, clustered (eigenvalues equal to 1e-9), graded (|eigenvalues| from 1e-14 to 1),
    nearly rank-2 correlation-like and block-diagonal matrices of sizes 1-6 are rebuilt from
    their eigenpairs to rounding level, with orthonormal eigenvectors and LAPACK's eigenvalues;
    a larger matrix goes to LAPACK."""
    import jax.numpy as jnp
    rng = np.random.default_rng(1)
    eig = jax.jit(jax.vmap(lsq.symmetric_eigh))
    for n in range(1, 7):
        q = np.linalg.qr(rng.normal(size=(300, n, n)))[0]
        a = rng.normal(size=(300, n, n))
        clustered = rng.normal(size=(300, 1)) + np.c_[np.zeros(300), 1e-9 * rng.normal(size=(300, n - 1))][:, :n]
        graded = 10.0 ** rng.uniform(-14, 0, (300, n)) * rng.choice([-1, 1], (300, n))
        b = rng.normal(size=(300, n, 2))
        c = b @ b.transpose(0, 2, 1) + 1e-10 * np.eye(n)
        dg = np.sqrt(np.einsum("nii->ni", c))
        block = a + a.transpose(0, 2, 1)
        block[:, 0, 1:] = block[:, 1:, 0] = 0.0
        for h in (a + a.transpose(0, 2, 1), np.einsum("nij,nj,nkj->nik", q, clustered, q),
                  np.einsum("nij,nj,nkj->nik", q, graded, q), c / dg[:, :, None] / dg[:, None, :],
                  block):
            ev, v = (np.asarray(x) for x in eig(jnp.asarray(h)))
            size = np.abs(h).max(axis=(1, 2))
            rebuilt = np.einsum("nij,nj,nkj->nik", v, ev, v)
            assert np.max(np.abs(rebuilt - h).max(axis=(1, 2)) / size) < 1e-13, n
            assert np.max(np.abs(np.einsum("nji,njk->nik", v, v) - np.eye(n))) < 1e-13, n
            lapack = np.linalg.eigvalsh(h)
            assert np.max(np.abs(np.sort(ev, axis=1) - lapack).max(axis=1) / size) < 1e-13, n
    big = rng.normal(size=(9, 9))
    ev, v = lsq.symmetric_eigh(jnp.asarray(big + big.T))
    assert np.allclose(np.sort(np.asarray(ev)), np.linalg.eigvalsh(big + big.T))

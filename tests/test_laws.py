"""Laws and objectives: formulas, parameter transforms, and exact derivatives."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lawfit  # noqa: F401
from lawfit import lsq
from lawfit.errors import DataError
from lawfit.laws import LAWS, get_law
from lawfit.numerics import float64
from lawfit.objectives import NAMES, Objective, make_objective

NAT = {"multiplicative": dict(A=2.1e3, E=0.62, alpha=0.36, beta=0.081),
       "additive": dict(A=50.0, B=8.0, E=0.6, alpha=0.2, beta=0.3),
       "chinchilla": dict(A=406.4, B=410.7, E=1.69, alpha=0.34, beta=0.28),
       "power": dict(A=5.0, E=1.2, alpha=0.3),
       "rectified": dict(B=40.0, Dl=30.0, beta=0.45, E=1.1)}


def test_formulas_match_the_papers():
    x, d = np.array([1e9, 4e9]), np.array([1e4, 1e5])
    p = NAT["multiplicative"]
    assert np.allclose(get_law("multiplicative").predict(p, x=x, d=d),
                       p["A"] * x ** -p["alpha"] * d ** -p["beta"] + p["E"], rtol=1e-12)
    p = NAT["chinchilla"]
    assert np.allclose(get_law("chinchilla").predict(p, x=x, d=d * 1e6),
                       p["E"] + p["A"] / x ** p["alpha"] + p["B"] / (d * 1e6) ** p["beta"])
    p = NAT["additive"]
    assert np.allclose(get_law("additive").predict(p, x=x, d=d),
                       p["A"] * x ** -p["alpha"] + p["B"] * d ** -p["beta"] + p["E"])
    p = NAT["power"]
    assert np.allclose(get_law("power").predict(p, x=d), p["A"] * d ** -p["alpha"] + p["E"])


@pytest.mark.parametrize("name", list(LAWS))
def test_internal_natural_round_trip(name):
    law = get_law(name)
    assert np.allclose(law.to_natural(law.to_internal(NAT[name])),
                       [NAT[name][p] for p in law.params])


def test_hoffmann_grid_has_4500_starts():
    g = get_law("chinchilla").grid()
    assert g.shape == (4500, 5)


@pytest.mark.parametrize("name", [n for n, law in LAWS.items() if law.analytic])
@pytest.mark.parametrize("objective", NAMES)
@float64     # computes with jax directly: in float64, as lawfit does (lawfit/numerics.py)
def test_exact_gradient_and_hessian_match_autodiff_and_finite_differences(name, objective):
    law = get_law(name)
    rng = np.random.default_rng(1)
    v = np.exp(rng.uniform(np.log(1e3), np.log(1e9), (40, len(law.variables))))
    y = law.predict(NAT[name], **{r: v[:, j] for j, r in enumerate(law.variables)})
    y = y * np.exp(rng.normal(0, 0.01, len(y)))
    obj = make_objective(objective, 0.003)
    prob = lsq.Problem.simple(law, obj, np.log(v), y)
    data, w = lsq.solver_arrays(prob)
    value, vgh = lsq.full_objective(obj)
    theta = jnp.asarray(law.to_internal(NAT[name]) + rng.normal(0, 0.05, law.n_params))
    f, g, h, hm, _ = vgh(theta, w, data)
    assert np.isclose(f, value(theta, w, data), rtol=1e-12)
    assert np.allclose(g, jax.grad(value)(theta, w, data), rtol=1e-8, atol=1e-12)
    assert np.allclose(h, jax.hessian(value)(theta, w, data), rtol=1e-7, atol=1e-10)
    eps = 1e-6
    fd = [(value(theta.at[i].add(eps), w, data) - value(theta.at[i].add(-eps), w, data)) / (2 * eps)
          for i in range(law.n_params)]
    assert np.allclose(g, fd, rtol=1e-4, atol=1e-8)
    if vgh.majorizer:
        # the majorizer's Hessian is that of Huber's quadratic majorizer at theta (iteratively
        # reweighted least squares): sum rho(r0) + rho'(r0) / (2 r0) (r^2 - r0^2)
        lv, yy = jnp.asarray(np.log(v)), jnp.asarray(y)

        def r_of(t):
            return jnp.exp(law.log_predict(t, lv)) - yy

        r0 = r_of(theta)
        rho, d1, _ = obj.derivatives(r0)
        q = lambda t: jnp.sum(rho + d1 / (2 * r0) * (r_of(t) ** 2 - r0 ** 2))   # noqa: E731
        assert np.allclose(hm, jax.hessian(q)(theta), rtol=1e-7, atol=1e-10)
        assert not np.allclose(hm, h, rtol=1e-3)       # runs beyond delta: they differ
    else:
        assert np.array_equal(hm, h)


@float64     # computes with jax directly: in float64, as lawfit does (lawfit/numerics.py)
def test_huber_is_summed_and_quadratic_then_linear():
    obj = Objective("huber", 0.1)
    r = jnp.array([0.05, -0.3])
    # 0.5 * 0.05^2 + 0.1 * (0.3 - 0.05)
    assert np.isclose(obj.value(jnp.log(jnp.array([1.05, 0.7])), jnp.ones(2), jnp.ones(2)),
                      0.5 * 0.05 ** 2 + 0.1 * (0.3 - 0.05))
    assert np.allclose(obj.derivatives(r)[1], [0.05, -0.1])


def test_bad_names_are_data_errors():
    with pytest.raises(DataError, match="unknown law"):
        get_law("chinchila")
    with pytest.raises(DataError, match="unknown objective"):
        make_objective("l2")
    with pytest.raises(DataError, match="delta must be positive"):
        make_objective("huber", -1.0)

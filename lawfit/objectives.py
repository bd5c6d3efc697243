"""Objectives: a residual space (loss or log loss) and a per-point penalty (Huber, squared, or
absolute: ``l1``/``l1-log``, least absolute deviation, the estimator behind Epoch AI's published
Chinchilla-replication point; solved by IRLS in robust.py).

Always a weighted *sum* over runs, never a mean: with a mean the objective and its gradient shrink
by 1/N and a solver's absolute tolerances stop it early (tests/test_fit.py,
``test_sum_objective_avoids_the_mean_trap``, shows the trap).

Adding an objective: a name in ``NAMES`` and its penalty in :meth:`Objective.derivatives` (value,
first and second derivative in the residual); the solvers, the bootstrap and fit.json take it from
there (an objective without curvature is solved by IRLS: see ``lawfit.robust.needs_irls``).
"""
from __future__ import annotations

from dataclasses import dataclass

from lawfit.errors import DataError

__all__ = ["NAMES", "Objective", "make_objective"]

NAMES = ("huber", "huber-log", "mse", "mse-log", "l1", "l1-log")


@dataclass(frozen=True)
class Objective:
    name: str                   # one of NAMES
    delta: float | None = 1e-3  # Huber threshold (None for squared error)
    reduction: str = "sum"      # "sum" (always, for fitting); "mean" exists only to show the trap

    @property
    def space(self) -> str:
        return "log" if self.name.endswith("-log") else "loss"

    @property
    def kind(self) -> str:
        return self.name.split("-")[0]

    def residuals(self, log_pred, y):
        import jax.numpy as jnp  # jax on first use: the registry itself is light
        return log_pred - jnp.log(y) if self.space == "log" else jnp.exp(log_pred) - y

    def penalty(self, r):
        import jax.numpy as jnp
        if self.kind == "l1":
            return jnp.abs(r)
        if self.kind == "huber":
            d = self.delta
            a = jnp.abs(r)
            return jnp.where(a <= d, 0.5 * r * r, d * (a - 0.5 * d))
        return r * r

    def derivatives(self, r):
        """Per-run penalty and its first and second derivative in the residual (``l1`` has no
        curvature: it is solved by IRLS in robust.py, never by Newton)."""
        import jax.numpy as jnp
        if self.kind == "l1":
            return jnp.abs(r), jnp.sign(r), jnp.zeros_like(r)
        if self.kind == "huber":
            d = self.delta
            inside = jnp.abs(r) <= d
            return (jnp.where(inside, 0.5 * r * r, d * (jnp.abs(r) - 0.5 * d)),
                    jnp.clip(r, -d, d), inside.astype(r.dtype))
        return r * r, 2.0 * r, 2.0 * jnp.ones_like(r)

    def value(self, log_pred, y, w):
        """Weighted sum (or, for the demonstration only, mean) of per-run penalties."""
        import jax.numpy as jnp
        total = jnp.sum(w * self.penalty(self.residuals(log_pred, y)))
        return total / jnp.sum(w) if self.reduction == "mean" else total

    def as_dict(self) -> dict:
        return {"name": self.name, "delta": self.delta if self.kind == "huber" else None,
                "reduction": self.reduction}


def make_objective(name: str | None, delta: float | None = None, law=None) -> Objective:
    """The objective named ``name`` (one of ``NAMES``).

    Parameters
    ----------
    name : str or None
        ``None`` takes the law's default (huber for the finetuning laws as Zhang et al., huber-log
        for chinchilla as Hoffmann et al. / Epoch AI).
    delta : float, optional
        Huber threshold (default 1e-3; ignored by the other objectives).
    law : Law, optional
        Whose default objective ``None`` means.

    Returns
    -------
    Objective
    """
    if name is None:
        name = law.default_objective if law is not None else "huber"
    if name not in NAMES:
        raise DataError(f"unknown objective {name!r}: choose one of {', '.join(NAMES)}")
    if name.startswith("l1"):
        return Objective(name, None)
    if name.startswith("huber"):
        delta = 1e-3 if delta is None else float(delta)
        if not delta > 0:
            raise DataError(f"delta must be positive, got {delta}", option="delta")
        return Objective(name, delta)
    return Objective(name, None)

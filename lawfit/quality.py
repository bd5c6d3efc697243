"""Does a fit describe its data? Residual diagnostics of one fitted group, and the ``poor_fit`` flag.

A solver can converge to the best parameters of a law that does not describe the runs at all
(Lin et al.'s Gigaword GPT-2 family under the multiplicative law: converged, residual RMSE 0.1
nats, curves bent where the law is straight). ``assess`` reports, in the objective's residual space
(loss, or log loss for the ``-log`` objectives):

- ``rmse`` and ``residual_sd`` (sqrt of the residual sum of squares over N - p);
- the largest standardized residual (residual / residual_sd) and the run it belongs to;
- per variable, a Wald-Wolfowitz runs test for systematic structure: the residuals are ordered
  along the variable *within each curve* (runs that share the other variables' values, e.g. one
  model's runs ordered by D) and the sign changes counted. A law that describes the data leaves
  residual signs in random order (about half as many runs as residuals); a law that bends the
  wrong way leaves long runs of one sign. z < 0 means too few runs. Where most runs share no
  other-variable values with another run, the residuals are ordered along the variable globally;
- where seeds repeat, the lack-of-fit F test of the configuration means against the pure error of
  the seeds, and the ratio of residual scatter to seed scatter (sqrt of F: about 1 when the law
  fits to within the seeds' noise).

``poor_fit`` is set when a structure test's one-sided p-value is below ``P_STRUCTURE`` divided by
the number of variables tested (Bonferroni), or the lack-of-fit p-value is below ``P_LACK_OF_FIT``.
The thresholds are calibrated in tests/test_quality.py: simulated data from the fitted law trip it
in well under 1% of fits, the Gigaword GPT-2 family and data from a law with a pre-power phase are
flagged. The flag is a statement about the data under the law, not about the optimiser: it is
independent of the convergence status.

Pure: arrays in, a JSON-ready dict out.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
from scipy import special  # ndtr, fdtrc (scipy.stats: 1 s to import)

__all__ = ["MIN_RUNS_TEST", "P_LACK_OF_FIT", "P_STRUCTURE", "assess", "lack_of_fit", "runs_test",
           "structure_many", "warning_text"]

P_STRUCTURE = 1e-3          # family-wise one-sided level of the runs tests
P_LACK_OF_FIT = 1e-3        # level of the lack-of-fit F test (seeds repeat)
MIN_RUNS_TEST = 10          # residuals needed (and at least 2 of each sign) for a runs test


def runs_test(residuals: np.ndarray, order_by: np.ndarray,
              within: np.ndarray | None = None) -> dict | None:
    """Wald-Wolfowitz runs test on the signs of ``residuals`` ordered by ``order_by``.

    Parameters
    ----------
    residuals : (N,) residuals.
    order_by : (N,) the variable along which the residuals are ordered.
    within : (N,) optional labels of curves: residuals are ordered and runs counted within each
        label, and the counts (and their null means and variances, conditional on each curve's
        numbers of positive and negative residuals) summed.

    Returns
    -------
    dict or None
        ``runs`` (observed), ``expected``, ``z`` ((runs - expected) / sd, negative: too few runs,
        i.e. structure), ``p`` (one-sided, too few runs; normal approximation) and ``n``; None
        when fewer than ``MIN_RUNS_TEST`` non-zero residuals or fewer than 2 of either sign.
    """
    r = np.asarray(residuals, np.float64)
    if within is None:
        curve = np.zeros(len(r), int)
    else:
        curve = np.unique(np.asarray(within), return_inverse=True)[1].reshape(-1)
    return _runs_tests(r, np.asarray(order_by, np.float64), np.zeros(len(r), int), curve, 1)[0]


def structure_many(residuals: np.ndarray, variables: np.ndarray,
                   group: np.ndarray) -> list[list[dict | None]]:
    """The structure tests of :func:`assess` for many fitted groups at once.

    Parameters
    ----------
    residuals : (M,) residuals of every group's rows, a group's rows contiguous and in its own
        order.
    variables : (M, V) the law's variables per row.
    group : (M,) group number of each row, non-decreasing from 0.

    Returns
    -------
    list
        Per group, per variable: the runs test of :func:`assess` (with ``ordered``) or None. The
        same figures, to the bit, as :func:`assess` on each group alone: the curves' terms are
        summed one curve at a time in each group's order of first appearance.
    """
    r = np.asarray(residuals, np.float64)
    variables = np.asarray(variables, np.float64).reshape(len(r), -1)
    group = np.asarray(group)
    n_groups = int(group[-1]) + 1 if len(group) else 0
    out = [[None] * variables.shape[1] for _ in range(n_groups)]
    for j in range(variables.shape[1]):
        v = variables[:, j]
        distinct = _distinct_per_group(group, [v], n_groups)
        curve = _curves_many(variables, j, group, n_groups)   # None: ordered globally
        within = (np.zeros(n_groups, bool) if curve is None else
                  np.bincount(group, weights=np.bincount(curve)[curve] >= 3,
                              minlength=n_groups) / np.bincount(group, minlength=n_groups) >= 0.5)
        if curve is None:
            curve = group
        curve = np.where(within[group], curve, -1 - group)      # globally: one curve per group
        tests = _runs_tests(r, v, group, curve, n_groups)
        for g in np.flatnonzero(distinct >= 3):
            if tests[g] is not None:
                out[g][j] = tests[g] | {"ordered": "within curves" if within[g] else "globally"}
    return out


def _distinct_per_group(group: np.ndarray, columns: list, n_groups: int,
                        return_labels: bool = False):
    """Number of distinct value tuples of ``columns`` per group (and, with ``return_labels``,
    each row's label of its tuple, numbered across groups)."""
    order = np.lexsort((*columns[::-1], group))
    new = np.ones(len(group), bool)
    new[1:] = group[order][1:] != group[order][:-1]
    for c in columns:
        new[1:] |= c[order][1:] != c[order][:-1]
    distinct = np.bincount(group[order][new], minlength=n_groups)
    if not return_labels:
        return distinct
    labels = np.empty(len(group), int)
    labels[order] = np.cumsum(new) - 1
    return distinct, labels


def _curves_many(variables: np.ndarray, j: int, group: np.ndarray, n_groups: int):
    """Per row, the label of its curve along variable j (rows of one group sharing every other
    variable's value), numbered across groups; None for a one-variable law."""
    others = [variables[:, k] for k in range(variables.shape[1]) if k != j]
    if not others:
        return None
    return _distinct_per_group(group, others, n_groups, return_labels=True)[1]


def _runs_tests(r, order_by, group, curve, n_groups) -> list:
    """:func:`runs_test` of every group (zero residuals left out), its curves labelled by
    ``curve`` (numbered across groups): each curve ordered along ``order_by``, runs counted
    within it, and its null mean and variance (conditional on its numbers of positive and
    negative residuals) summed over the group's curves one at a time, in order of first
    appearance."""
    keep = r != 0
    r, order_by, group, curve = r[keep], order_by[keep], group[keep], curve[keep]
    n = np.bincount(group, minlength=n_groups)
    pos = np.bincount(group, weights=r > 0, minlength=n_groups)
    neg = np.bincount(group, weights=r < 0, minlength=n_groups)
    # curves numbered in order of first appearance (groups are contiguous: group-major)
    _, first, inverse = np.unique(curve, return_index=True, return_inverse=True)
    rank = np.empty(len(first), int)
    rank[np.argsort(first)] = np.arange(len(first))
    curve = rank[inverse.reshape(-1)]
    order = np.lexsort((order_by, curve))
    s, c = np.sign(r[order]), curve[order]
    k = len(first)
    n_c = np.bincount(c, minlength=k)
    a = np.bincount(c[s > 0], minlength=k)
    b = n_c - a
    same = c[1:] == c[:-1]
    changes = np.bincount(c[1:][same & (s[1:] != s[:-1])], minlength=k)
    group_c = np.empty(k, int)
    group_c[c] = group[order]
    both = (a > 0) & (b > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_c = np.where(both, 2.0 * a * b / n_c + 1, 1.0)
        var_c = np.where(both, 2.0 * a * b * (2.0 * a * b - n_c) / (n_c * n_c * (n_c - 1)), 0.0)
    runs = np.bincount(group_c, weights=1 + changes, minlength=n_groups)
    # each group's curves summed one at a time, in order (as runs_test does)
    start = np.searchsorted(group_c, np.arange(n_groups))
    slot = np.arange(k) - start[group_c]
    width = int(slot.max()) + 1 if k else 0
    table = np.zeros((2, n_groups, width))
    table[0, group_c, slot] = mean_c
    table[1, group_c, slot] = var_c
    expected, var = np.zeros(n_groups), np.zeros(n_groups)
    for w in range(width):
        expected = expected + table[0, :, w]
        var = var + table[1, :, w]
    ok = (n >= MIN_RUNS_TEST) & (pos >= 2) & (neg >= 2) & (var > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (runs - expected) / np.sqrt(var)
    p = special.ndtr(z)
    return [{"runs": int(runs[g]), "expected": float(expected[g]), "z": float(z[g]),
             "p": float(p[g]), "n": int(n[g])} if ok[g] else None for g in range(n_groups)]


def lack_of_fit(mean_residuals: np.ndarray, n_seeds: np.ndarray, seed_ss: np.ndarray,
                n_params: float) -> dict | None:
    """Lack-of-fit F test of configuration means against the seeds' pure error.

    Parameters
    ----------
    mean_residuals : (M,) residual of each configuration's mean loss.
    n_seeds : (M,) seeds averaged per configuration.
    seed_ss : (M,) within-configuration sum of squares of the seeds around their mean (in the
        residual space).
    n_params : free parameters of the fit (per curve set; may be fractional for a joint fit's
        subset).

    Returns
    -------
    dict or None
        ``F``, ``df`` (lack of fit, pure error), ``p``, ``seed_sd`` (pooled sd of one seed) and
        ``scatter_ratio`` (sqrt F: residual scatter of the means over what the seeds' noise
        explains); None without repeated seeds or without degrees of freedom.
    """
    n_seeds = np.asarray(n_seeds, np.float64)
    df_pe = float(np.sum(n_seeds - 1))
    m = len(mean_residuals)
    df_lof = m - float(n_params)
    ss_pe = float(np.sum(seed_ss))
    if df_pe < 1 or df_lof <= 0 or ss_pe <= 0:
        return None
    ss_lof = float(np.sum(n_seeds * np.asarray(mean_residuals) ** 2))
    f = (ss_lof / df_lof) / (ss_pe / df_pe)
    return {"F": f, "df": [df_lof, df_pe], "p": float(special.fdtrc(df_lof, df_pe, f)),
            "seed_sd": math.sqrt(ss_pe / df_pe), "scatter_ratio": math.sqrt(f)}


def assess(residuals: np.ndarray, variables: np.ndarray, names: Sequence[str], *,
           n_params: float, space: str = "loss", n_seeds: np.ndarray | None = None,
           seed_ss: np.ndarray | None = None, config: np.ndarray | None = None,
           runs: Sequence[Mapping] | None = None,
           tests: Sequence[dict | None] | None = None) -> dict:
    """The ``fit_quality`` block of one fitted group.

    Parameters
    ----------
    residuals : (N,) prediction - observation per fitted row (configuration means when seeds
        were averaged), in the objective's residual space.
    variables : (N, V) the law's variables per row; ``names`` their column names.
    n_params : free parameters of the fit.
    space : "loss" or "log": the residual space (reported).
    n_seeds, seed_ss : per row, seeds averaged and their within-row sum of squares (residual
        space): the lack-of-fit test where some n_seeds > 1.
    config : per row, a configuration label, when seeds were kept as separate rows: the
        lack-of-fit test then uses the configuration means of the residuals and the scatter of
        the rows around them (``n_seeds``/``seed_ss`` are ignored).
    runs : per row, a mapping identifying the run (e.g. its run_id and sizes), reported with the
        largest standardized residual.
    tests : per variable, this group's structure tests already computed by
        :func:`structure_many` (many groups at once); computed here when None.

    Returns
    -------
    dict
        JSON-ready: ``space``, ``n``, ``rmse``, ``residual_sd``, ``max_std_residual``,
        ``structure`` (per variable name: runs test or None), ``seeds`` (lack of fit or None),
        ``poor_fit`` and ``reasons``, and the ``thresholds`` used.
    """
    r = np.asarray(residuals, np.float64)
    variables = np.asarray(variables, np.float64).reshape(len(r), -1)
    n = len(r)
    rmse = float(np.sqrt(np.mean(r ** 2))) if n else float("nan")
    dof = n - float(n_params)
    sd = float(np.sqrt(np.sum(r ** 2) / dof)) if dof > 0 else float("nan")
    worst = None
    if n and sd > 0 and math.isfinite(sd):
        i = int(np.argmax(np.abs(r)))
        worst = {"value": float(r[i] / sd), "residual": float(r[i]), "row": i,
                 "run": dict(runs[i]) if runs is not None else
                 {nm: float(v) for nm, v in zip(names, variables[i])}}
    structure = {}
    if tests is None:           # this group alone: the many-groups test with one group
        tests = structure_many(r, variables, np.zeros(n, int))[0] if n else [None] * len(names)
    for j, nm in enumerate(names):
        structure[nm] = tests[j]
    seeds = None
    if config is not None:
        _, inverse = np.unique(np.asarray(config), return_inverse=True)
        n_seeds = np.bincount(inverse).astype(np.float64)
        means = np.bincount(inverse, weights=r) / n_seeds
        seed_ss = np.bincount(inverse, weights=(r - means[inverse]) ** 2)
        if np.any(n_seeds > 1):
            seeds = lack_of_fit(means, n_seeds, seed_ss, n_params)
    elif n_seeds is not None and seed_ss is not None and np.any(np.asarray(n_seeds) > 1):
        seeds = lack_of_fit(r, n_seeds, seed_ss, n_params)
    tested = [k for k, v in structure.items() if v is not None]
    reasons = []
    for k in tested:
        p = structure[k]["p"]
        if p < P_STRUCTURE / len(tested):
            reasons.append(f"residuals run in long same-sign stretches along {k} "
                           f"({structure[k]['runs']} sign runs where {structure[k]['expected']:.1f} "
                           f"are expected, p = {p:.1g}): the law bends differently from the data")
    if seeds is not None and seeds["p"] < P_LACK_OF_FIT:
        reasons.append(f"residual scatter is {seeds['scatter_ratio']:.2g} x the seeds' scatter "
                       f"(lack-of-fit F = {seeds['F']:.3g}, p = {seeds['p']:.1g})")
    return {"space": space, "n": n, "rmse": rmse, "residual_sd": sd, "max_std_residual": worst,
            "structure": structure, "seeds": seeds, "poor_fit": bool(reasons),
            "reasons": reasons,
            "thresholds": {"structure_p": P_STRUCTURE, "lack_of_fit_p": P_LACK_OF_FIT}}


def warning_text(quality: Mapping) -> str | None:
    """One-line warning for a poor fit (None when the fit describes its data)."""
    if not quality.get("poor_fit"):
        return None
    return (f"poor_fit: the law does not describe these runs (residual RMSE "
            f"{quality['rmse']:.3g} in {quality['space']}): " + "; ".join(quality["reasons"]))

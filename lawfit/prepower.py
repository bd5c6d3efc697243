"""The pre-power phase: which small-D runs of a finetuning curve lie before its power law holds.

Finetuning curves are flat at small D (Lin et al. 2024, "Selecting Large Language Model to
Fine-tune via Rectified Scaling Law", ICML 2024: the "pre-power phase"), then follow a power law.
A power law fitted through the flat part extrapolates badly. Two procedures decide, per curve (one
model, all D), where the power phase begins:

``ats``
    Lin et al.'s AtS ("Accept then Stop"), as in their code: grow a log-log line from the k = 3
    largest D downwards; stop at the first smaller run whose residual exceeds delta = 5 standard
    deviations of the line's residuals. The runs above the stop are the power phase.

``validate`` (lawfit's)
    Choose the start of the power phase by forward validation, the task itself: for every candidate
    start, fit the log-log line on the runs from that start up to an origin and predict the largest
    run; the origins are the second- and third-largest runs (fits of at least k = 3 runs). The
    start with the smallest mean squared log error wins (ties: the most runs). No thresholds.

Both see only positive D: a base-model row (D = 0) belongs to no power phase. Pure numpy; the
fit itself is done afterwards by :func:`lawfit.fit` on the runs kept.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METHODS = ("validate", "ats")
MIN_RUNS = 3          # the fewest runs a power phase (and any line fitted here) may have
ATS_DELTA = 5.0       # Lin et al.'s threshold, in residual standard deviations
ORIGINS = 2           # validate: the largest run is predicted from this many earlier origins


@dataclass(frozen=True)
class PowerPhase:
    """Where one curve's power phase begins."""
    method: str
    start: float          # smallest D of the power phase
    n_kept: int           # runs in the power phase (D > 0)
    n_excluded: int       # positive-D runs before it (base-model rows are not counted)

    def as_dict(self) -> dict:
        return {"method": self.method, "start": self.start, "n_kept": self.n_kept,
                "n_excluded": self.n_excluded}


def _line(lx, ly):
    """Least-squares line ly = a + b lx: (a, b)."""
    b, a = np.polyfit(lx, ly, 1)
    return a, b


def _ats_start(lx, ly, k=MIN_RUNS, delta=ATS_DELTA) -> int:
    """Index of the first run of the power phase by AtS (Lin et al.'s ``_estimate_phase_transition``
    and the slice their ``ats_select`` takes after it)."""
    n = len(lx)
    if n <= k:
        return 0
    m = k
    for m in range(k, n):
        a, b = _line(lx[n - m:], ly[n - m:])
        resid = ly[n - m:] - (a + b * lx[n - m:])
        sd = resid.std()
        test = abs(ly[n - m - 1] - (a + b * lx[n - m - 1])) / sd if sd > 0 else np.inf
        if test > delta:
            break
    # their transition point is n - m - 1 and the power phase starts one run after it
    return n - m


def _validate_start(lx, ly, k=MIN_RUNS, origins=ORIGINS) -> int:
    n = len(lx)
    if n < k + 2:
        return 0
    best, best_score = 0, np.inf
    for s in range(0, n - k - 1):
        errs = []
        for h in range(1, origins + 1):
            end = n - h                      # fit on s..end-1, predict the largest run
            if end - s < k:
                break
            a, b = _line(lx[s:end], ly[s:end])
            errs.append((a + b * lx[-1] - ly[-1]) ** 2)
        if not errs:
            break
        score = float(np.mean(errs))
        if score < best_score * (1 - 1e-12):
            best, best_score = s, score
    return best


def power_phase(d, loss, method: str = "validate") -> PowerPhase:
    """Decide where the power phase of one curve begins.

    Parameters
    ----------
    d : array_like
        Finetuning data sizes of the curve's runs (a zero, the base model, is ignored).
    loss : array_like
        Their losses (positive).
    method : {"validate", "ats"}
        See the module docstring.

    Returns
    -------
    PowerPhase
        The smallest D of the power phase and how many runs were kept and excluded.
    """
    from lawfit.errors import DataError
    if method not in METHODS:
        raise DataError(f"unknown pre-power method {method!r}: choose one of {', '.join(METHODS)}")
    d = np.asarray(d, np.float64)
    loss = np.asarray(loss, np.float64)
    pos = d > 0
    # average repeats of one D (seeds) so that every D is one point of the curve
    ud, inv = np.unique(d[pos], return_inverse=True)
    uy = np.exp(np.bincount(inv, np.log(loss[pos])) / np.bincount(inv))
    if len(ud) < MIN_RUNS:
        raise DataError(f"a curve has {len(ud)} runs with D > 0: finding its power phase needs at "
                        f"least {MIN_RUNS}")
    lx, ly = np.log(ud), np.log(uy)
    s = _ats_start(lx, ly) if method == "ats" else _validate_start(lx, ly)
    return PowerPhase(method, float(ud[s]), int(len(ud) - s), int(s))

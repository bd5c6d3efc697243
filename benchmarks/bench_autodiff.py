"""Analytic log-sum-exp derivatives vs jax autodiff for the built-in laws (same solver, same starts).

    nice .venv/bin/python benchmarks/bench_autodiff.py

Times ``lsq.multistart`` over each law's default start grid on simulated runs, both derivative
paths in the same process, alternating, after one compiling call each; reports the median of
REPS and the ratio autodiff / analytic, and checks that both reach the same optimum. Writes
benchmarks/results/bench_autodiff.json.
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lawfit import lsq  # noqa: E402
from lawfit.laws import get_law  # noqa: E402
from lawfit.objectives import make_objective  # noqa: E402

REPS = 5
TRUTH = {"multiplicative": dict(A=2.1e3, E=0.62, alpha=0.36, beta=0.081),
         "chinchilla": dict(A=406.4, B=410.7, E=1.69, alpha=0.34, beta=0.28),
         "power": dict(A=5.0, E=1.2, alpha=0.3)}


def problem(name, n=60, seed=0):
    law = get_law(name)
    rng = np.random.default_rng(seed)
    v = np.exp(rng.uniform(np.log(1e6), np.log(1e10), (n, len(law.variables))))
    y = law.predict(TRUTH[name], **{r: v[:, j] for j, r in enumerate(law.variables)})
    y = y * np.exp(rng.normal(0, 0.01, n))
    return lsq.Problem.simple(law, make_objective(None, None, law), np.log(v), y)


def timed(prob, starts, analytic):
    lsq.ANALYTIC = analytic
    try:
        t0 = time.perf_counter()
        ms = lsq.multistart(prob, starts)
        return time.perf_counter() - t0, ms
    finally:
        lsq.ANALYTIC = True


def main() -> int:
    out = {}
    for name in TRUTH:
        prob = problem(name)
        starts = prob.law.grid()
        res = {True: [], False: []}
        opt = {}
        for analytic in (True, False):                       # compile both
            opt[analytic] = timed(prob, starts, analytic)[1]
        for _ in range(REPS):
            for analytic in (True, False):
                res[analytic].append(timed(prob, starts, analytic)[0])
        a, g = statistics.median(res[True]), statistics.median(res[False])
        out[name] = {"starts": len(starts), "runs": prob.n, "analytic_s": a, "autodiff_s": g,
                     "ratio_autodiff_over_analytic": g / a,
                     "same_optimum": bool(np.isclose(opt[True].value, opt[False].value,
                                                     rtol=1e-8))}
        print(f"{name:<15} {len(starts):>5} starts  analytic {a:.3f} s  autodiff {g:.3f} s  "
              f"ratio {g / a:.2f}  same optimum {out[name]['same_optimum']}", flush=True)
    path = ROOT / "benchmarks" / "results" / "bench_autodiff.json"
    path.write_text(json.dumps({"reps": REPS, "median": True, "results": out}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

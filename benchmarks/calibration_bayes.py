"""Calibration study: how often do central posterior intervals cover the true parameters?

R datasets from the multiplicative law (A=300, E=0.6, alpha=0.3, beta=0.1) on a 4 x 6 grid
(model_params 1e8..3e9 x finetune_examples 1e3..3e5, Gaussian noise sd 0.01), each fitted with
the default Bayesian fitter (Student-t, 4 x 1,000 + 1,000). For every nominal level in
LEVELS and every parameter: the fraction of datasets whose central interval covers the truth,
with a 95% binomial (Clopper-Pearson) interval. Writes benchmarks/results/calibration_bayes.json
and calibration_bayes.png (coverage vs nominal level); a second argument names other files
(``NAME.json``, ``NAME.png``), for a shorter check beside the full study.

    nice .venv/bin/python benchmarks/calibration_bayes.py [R [NAME]]
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import beta as beta_dist

import lawfit
from lawfit.simulate import simulate

RESULTS = Path(__file__).resolve().parent / "results"
TRUTH = {"A": 300.0, "E": 0.6, "alpha": 0.3, "beta": 0.1}
GRID = {"model_params": [1e8, 3e8, 1e9, 3e9], "finetune_examples": [1e3, 3e3, 1e4, 3e4, 1e5, 3e5]}
LEVELS = (0.5, 0.8, 0.9, 0.95)


def clopper_pearson(k, n, a=0.05):
    lo = beta_dist.ppf(a / 2, k, n - k + 1) if k > 0 else 0.0
    hi = beta_dist.ppf(1 - a / 2, k + 1, n - k) if k < n else 1.0
    return float(lo), float(hi)


def main(repeats: int = 100, name: str = "calibration_bayes"):
    t0 = time.perf_counter()
    hits = {lv: {p: 0 for p in TRUTH} for lv in LEVELS}
    rhat, div = [], 0
    for r in range(repeats):
        frame = simulate("multiplicative", TRUTH, GRID, noise=0.01, seeds=1, seed=10_000 + r)
        g = lawfit.fit(frame, "multiplicative", fitter="bayes", seed=r).groups[0]
        rhat.append(g.info["diagnostics"]["r_hat_max"])
        div += g.info["diagnostics"]["divergences"]
        for lv in LEVELS:
            lo, hi = g.interval(lv)
            for j, p in enumerate(g.law.params):
                hits[lv][p] += bool(lo[j] <= TRUTH[p] <= hi[j])
        if (r + 1) % 10 == 0:
            print(f"{r + 1}/{repeats} datasets, {time.perf_counter() - t0:.0f} s", flush=True)
    table = {}
    for lv in LEVELS:
        table[str(lv)] = {p: {"coverage": k / repeats, "ci95": clopper_pearson(k, repeats)}
                          for p, k in hits[lv].items()}
        pooled = sum(hits[lv].values())
        table[str(lv)]["all (pooled)"] = {"coverage": pooled / (4 * repeats)}
    cmd = f"nice .venv/bin/python benchmarks/calibration_bayes.py {repeats}" + (
        f" {name}" if name != "calibration_bayes" else "")
    doc = {"command": cmd,
           "datasets": repeats, "truth": TRUTH, "grid": GRID, "noise_sd": 0.01,
           "coverage": table, "r_hat_max_worst": max(rhat), "divergences_total": div,
           "seconds": round(time.perf_counter() - t0, 1)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot([0.4, 1], [0.4, 1], color="grey", lw=1, ls="--", label="calibrated")
    for j, p in enumerate(TRUTH):
        cov = [table[str(lv)][p]["coverage"] for lv in LEVELS]
        err = np.array([[table[str(lv)][p]["coverage"] - table[str(lv)][p]["ci95"][0],
                         table[str(lv)][p]["ci95"][1] - table[str(lv)][p]["coverage"]]
                        for lv in LEVELS]).T
        ax.errorbar(np.array(LEVELS) + (j - 1.5) * 0.006, cov, yerr=err, marker="o", ms=4,
                    capsize=2, lw=1, label=p)
    ax.set_xlabel("nominal level of the central interval")
    ax.set_ylabel(f"coverage over {repeats} datasets")
    ax.set_title("lawfit Bayesian fit: calibration")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=120)
    print(json.dumps(doc["coverage"]["0.9"], indent=1))
    print(f"wrote {RESULTS / (name + '.json')} and {name}.png")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100,
         sys.argv[2] if len(sys.argv) > 2 else "calibration_bayes")

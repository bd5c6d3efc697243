"""Bayesian and bootstrap intervals side by side on real runs: Lin et al. 2024, wmt19, family OPT
(finetune_examples > 0), multiplicative law, Huber(1e-3) on the loss (bootstrap: 1,000
resamples; posterior: 4 x 1,000 + 1,000, Student-t). Writes
benchmarks/results/bayes_vs_bootstrap_lin2024.json and prints a markdown table.

    nice .venv/bin/python benchmarks/bayes_vs_bootstrap_lin2024.py
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

import lawfit

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("LAWFIT_REFERENCE_DATA", ROOT.parent / "shared" / "data"))


def main():
    frame = pd.read_csv(DATA / "lin2024" / "lin2024_wmt19.csv")
    frame = frame[(frame["family"] == "OPT") & (frame["finetune_examples"] > 0)]
    post = lawfit.fit(frame, "multiplicative", fitter="bayes", seed=0).groups[0]
    boot = lawfit.fit(frame, "multiplicative", bootstrap=1000, seed=0).groups[0]
    rows = {}
    lines = ["| parameter | least squares [95% bootstrap] | posterior median [95% posterior] |",
             "|---|---|---|"]
    for j, p in enumerate(post.law.params):
        (bl, bh), (pl, ph) = [(iv[0][j], iv[1][j]) for iv in (boot.interval(), post.interval())]
        rows[p] = {"bootstrap": [boot.estimate[j], bl, bh], "posterior": [post.estimate[j], pl, ph]}
        lines.append(f"| {p} | {boot.estimate[j]:.4g} [{bl:.3g}, {bh:.3g}] | "
                     f"{post.estimate[j]:.4g} [{pl:.3g}, {ph:.3g}] |")
    doc = {"command": "nice .venv/bin/python benchmarks/bayes_vs_bootstrap_lin2024.py",
           "data": "lin2024_wmt19.csv, family OPT, finetune_examples > 0", "runs": post.n_points,
           "params": rows, "bootstrap_status": boot.status, "bootstrap_warnings": boot.warnings,
           "posterior_status": post.status, "posterior_warnings": list(post.warnings),
           "diagnostics": post.info["diagnostics"], "noise": post.info["noise"]}
    out = ROOT / "benchmarks" / "results" / "bayes_vs_bootstrap_lin2024.json"
    out.write_text(json.dumps(doc, indent=2, default=float) + "\n")
    print("\n".join(lines))
    print(json.dumps({k: doc[k] for k in ("bootstrap_status", "posterior_status",
                                          "posterior_warnings", "diagnostics")}, indent=1))


if __name__ == "__main__":
    main()

"""Benchmark: NUTS on the Chinchilla law, ~240 simulated runs, next to the least-squares bootstrap.

Data: lawfit.simulate.simulate("chinchilla", Hoffmann-like A=406.4, B=410.7, E=1.69,
alpha=0.34, beta=0.28) on a 16 x 15 grid of model_params 7e7..1.6e10 and pretrain_tokens
5e9..5e11 (240 runs, one seed each, Gaussian noise sd 0.01 on the loss), objective huber-log
(Student-t likelihood on log loss).

Measured: 4 chains x (1,000 warm-up + 1,000 draws) with lawfit's driver (every chain in one
compiled program, ``lawfit.bayes.inference.sample``; chain_method "sequential" and "vectorized")
and with numpyro's own ``MCMC``/``NUTS`` (``sample_numpyro``: the same potential, start and
Laplace-seeded dense mass matrix; "sequential"): wall and CPU time of the first fit of each
(compilation included), of a second fit on another dataset of the same shape (compiled), min
bulk ESS per second, R-hat, E-BFMI; then the least-squares fit with 1,000 bootstrap resamples on
the same runs. CPU seconds (all threads) are the figure to compare on a shared machine.
Writes benchmarks/results/bench_bayes.json.

    nice .venv/bin/python benchmarks/bench_bayes.py
"""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np

T0 = time.perf_counter()
import lawfit  # noqa: E402
from lawfit.simulate import simulate  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "bench_bayes.json"
PARAMS = {"A": 406.4, "B": 410.7, "E": 1.69, "alpha": 0.34, "beta": 0.28}
GRID = {"model_params": list(np.geomspace(7e7, 1.6e10, 16)),
        "pretrain_tokens": list(np.geomspace(5e9, 5e11, 15))}


def main():
    frame = simulate("chinchilla", PARAMS, GRID, noise=0.01, seeds=1, seed=2024)
    other = simulate("chinchilla", PARAMS, GRID, noise=0.01, seeds=1, seed=2025)
    print(f"{len(frame)} runs", flush=True)
    rows = {}
    for driver, method in (("lawfit", "sequential"), ("numpyro", "sequential"),
                           ("lawfit", "vectorized")):
        for attempt, data in (("first (compile included)", frame), ("second (compiled)", other)):
            t, c = time.perf_counter(), time.process_time()
            res = lawfit.fit(data, "chinchilla", fitter="bayes", seed=1,
                             bayes_options={"chain_method": method, "driver": driver})
            wall, cpu = time.perf_counter() - t, time.process_time() - c
            g = res.groups[0]
            d = g.info["diagnostics"]
            row = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "nuts_s": d["seconds"],
                   "bfmi_min": round(d["bfmi_min"], 3), "load_average": os.getloadavg()[0],
                   "r_hat_max": round(d["r_hat_max"], 4),
                   "ess_bulk_min": round(d["ess_bulk_min"]),
                   "ess_tail_min": round(d["ess_tail_min"]),
                   "ess_bulk_per_s": round(d["ess_bulk_min"] / d["seconds"], 1),
                   "divergences": d["divergences"],
                   "mean_leapfrog_steps": round(d["mean_leapfrog_steps"], 2),
                   "status": g.status,
                   "params": {p: [round(float(v), 4) for v in (g.estimate[j],
                                                                *np.array(g.interval(0.95))[:, j])]
                              for j, p in enumerate(g.law.params)}}
            rows[f"{driver} driver, {method}, {attempt}"] = row
            print(driver, method, attempt, json.dumps(row), flush=True)
    t, c = time.perf_counter(), time.process_time()
    res = lawfit.fit(frame, "chinchilla", bootstrap=1000, seed=1)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    g = res.groups[0]
    boot = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "draws": len(g.draws), "status": g.status,
            "params": {p: [round(float(v), 4) for v in (g.estimate[j],
                                                         *np.array(g.interval(0.95))[:, j])]
                       for j, p in enumerate(g.law.params)}}
    print("bootstrap", json.dumps(boot), flush=True)
    doc = {"command": "nice .venv/bin/python benchmarks/bench_bayes.py",
           "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared)",
           "load_average_at_end": os.getloadavg(),
           "runs": len(frame), "truth": PARAMS, "nuts": rows, "bootstrap_1000": boot,
           "process_s": round(time.perf_counter() - T0, 1)}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

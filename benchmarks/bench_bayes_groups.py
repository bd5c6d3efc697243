"""Benchmark: Bayesian fits of several groups, one by one vs their NUTS chains vectorised.

``lawfit.fit(fitter="bayes")`` samples each group's chains in turn (one compiled single-chain
program, "sequential"), or, with ``bayes_options={"vectorize_groups": True}``, every (group,
chain) of a shape bucket in one compiled program (``lawfit.bayes.fit_problems``: jax.vmap of
numpyro's NUTS kernel over groups and chains, each with its own warm-up adaptation).

Two workloads, each fitted twice per mode in one process (the first includes compilation, the
second is compiled), modes interleaved so that machine load hits both alike:

* ``compare``: the Bayesian fits behind ``lawfit compare data/zhang2024_simulated.csv --laws
  multiplicative,additive --where "factor == 'model_params' and task == 'wmt14_en_de'"``
  (3 groups of 50-55 runs per law, target acceptance 0.99 as compare uses);
* ``groups``: 12 simulated groups (multiplicative law, 24 runs each, different truths).

Writes wall and CPU seconds, NUTS seconds, R-hat and divergences per mode to
benchmarks/results/bench_bayes_groups.json.

    nice .venv/bin/python benchmarks/bench_bayes_groups.py [--warmup 1000 --draws 1000]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

import lawfit
from lawfit.simulate import simulate

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "bench_bayes_groups.json"
WHERE = "factor == 'model_params' and task == 'wmt14_en_de'"


def many_groups(n: int = 12) -> pd.DataFrame:
    grid = {"model_params": [1e8, 3e8, 1e9, 3e9],
            "finetune_examples": [1e3, 3e3, 1e4, 3e4, 1e5, 3e5]}
    rng = np.random.default_rng(7)
    frames = []
    for i in range(n):
        truth = {"A": float(rng.uniform(100, 500)), "E": float(rng.uniform(0.4, 0.8)),
                 "alpha": float(rng.uniform(0.2, 0.4)), "beta": float(rng.uniform(0.05, 0.15))}
        frames.append(simulate("multiplicative", truth, grid, noise=0.01, seeds=1, seed=100 + i,
                               extra={"task": f"t{i:02d}", "method": "lora"}))
    return pd.concat(frames, ignore_index=True)


def run(work, vectorize: bool, warmup: int, draws: int) -> dict:
    t, c = time.perf_counter(), time.process_time()
    results = work(vectorize, warmup, draws)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    diags = [g.info["diagnostics"] for r in results for g in r.groups]
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "nuts_s": round(sum(d["seconds"] for d in diags), 2),
            "r_hat_max": round(max(d["r_hat_max"] for d in diags), 4),
            "divergences": int(sum(d["divergences"] for d in diags)),
            "mean_leapfrog_steps": round(float(np.mean([d["mean_leapfrog_steps"]
                                                        for d in diags])), 2),
            "vectorized": [r.settings["vectorized_groups"] for r in results],
            "load_average": os.getloadavg()[0]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--workloads", default="compare,groups")
    args = ap.parse_args(argv)
    zhang = pd.read_csv(ROOT / "data" / "zhang2024_simulated.csv")
    sim = many_groups()

    def compare(vectorize, warmup, draws):
        opts = {"vectorize_groups": vectorize, "warmup": warmup, "draws": draws,
                "target_accept": 0.99}
        return [lawfit.fit(zhang, law, fitter="bayes", where=WHERE, bayes_options=opts)
                for law in ("multiplicative", "additive")]

    def groups(vectorize, warmup, draws):
        opts = {"vectorize_groups": vectorize, "warmup": warmup, "draws": draws}
        return [lawfit.fit(sim, "multiplicative", fitter="bayes", seed=1, bayes_options=opts)]

    work = {"compare": compare, "groups": groups}
    rows = {}
    for name in args.workloads.split(","):
        for attempt in ("first (compile included)", "second (compiled)"):
            for vectorize in (False, True):
                label = f"{name}, {'vectorised' if vectorize else 'one by one'}, {attempt}"
                rows[label] = run(work[name], vectorize, args.warmup, args.draws)
                print(label, rows[label], flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"machine": f"{platform.node()} ({os.cpu_count()} cores, "
                                          f"{platform.processor() or platform.machine()})",
                               "warmup": args.warmup, "draws": args.draws, "rows": rows},
                              indent=1) + "\n")


if __name__ == "__main__":
    main()

"""Coverage of the zhang2024 recipe's stage-2 intervals (PET-size series) over simulated paper
grids, with the whole recipe bootstrapped (stage 2 refitted per paired stage-1 draw), against the
conditional intervals that freeze E and beta at stage 1's point estimate (what lawfit did before).

Data: ``lawfit.simulate.paper_grid`` (Zhang et al. 2024's grid, Table 4's parameters, Gaussian
noise sd 0.005, 3 seeds), a fresh noise draw per grid. Checked against Table 4's truth:

- A and alpha of every PET-size group (3 tasks x {prompt, lora}), at the 95% level;
- critical data sizes along PET size: the crossings in D of FMT at 1B (stage 1, model-size
  series) and of each PET method at each prompt length / LoRA rank (stage 2), which the true
  Table 4 curves have, with intervals from the paired draws.

    nice .venv/bin/python benchmarks/coverage_two_stage.py [--grids 40] [--bootstrap 100]

Writes benchmarks/results/coverage_two_stage.csv (one row per grid x interval) and
coverage_two_stage.md / .json (the summary, with Clopper-Pearson intervals of each coverage).
Grid g always uses noise seed 1000 + g and bootstrap seed g, so the work shards: run
``--start S --grids K --out DIR_i`` in several processes, then
``--from-csv DIR_1/coverage_two_stage.csv DIR_2/... `` summarises them together.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import beta as beta_dist

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shards import add_shard_arguments, read_shards  # noqa: E402

import lawfit  # noqa: E402
from lawfit import paper  # noqa: E402
from lawfit.analysis import recipes  # noqa: E402
from lawfit.analysis.critical import crossings  # noqa: E402
from lawfit.laws import get_law  # noqa: E402
from lawfit.result import GroupFit  # noqa: E402
from lawfit.simulate import paper_grid  # noqa: E402

LEVEL = 0.95
PET = ("prompt", "lora")


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    a = 1 - level
    lo = beta_dist.ppf(a / 2, k, n - k + 1) if k > 0 else 0.0
    hi = beta_dist.ppf(1 - a / 2, k + 1, n - k) if k < n else 1.0
    return float(lo), float(hi)


def at_x(g: GroupFit, x: float, key: dict) -> GroupFit:
    """The group's curve in D at X = x, as a multiplicative-law group with X folded into A
    (A' = A x^-alpha, alpha' = 0), so that two groups with different X (FMT at 1B, LoRA at rank r)
    can be compared by ``crossings`` at X = 1."""
    law = g.law
    ia, ial = law.params.index("A"), law.params.index("alpha")

    def fold(p):
        p = np.array(p, float, copy=True)
        p[..., ia] = p[..., ia] * x ** -p[..., ial]
        p[..., ial] = 0.0
        return p

    return GroupFit(key=key, law=law, n_points=g.n_points, status=g.status,
                    objective_value=g.objective_value, estimate=fold(g.estimate),
                    draws=fold(g.draws), interval_method=g.interval_method,
                    ranges={"x": (1.0, 1.0), "d": g.ranges["d"]})


def true_group(task: str, method: str, factor: str) -> GroupFit:
    law = get_law("multiplicative")
    p = paper.law_params(task, method, factor)
    d = paper.finetune_sizes(task, method)
    return GroupFit({"task": task, "method": method, "factor": factor}, law, 0, "", 0.0,
                    np.array([p[k] for k in law.params]), np.zeros((0, 4)), None,
                    {"x": (1.0, 1.0), "d": (min(d), max(d))})


def true_crossings() -> list[dict]:
    out = []
    for task in paper.TASKS:
        fmt = at_x(true_group(task, "fmt", "model_params"), 1e9, {})
        for method in PET:
            for r in paper.pet_sizes(method):
                pet = at_x(true_group(task, method, "pet_params"), float(r), {})
                for c in crossings(fmt, pet, 1.0, names=("fmt", method)).crossings:
                    out.append({"task": task, "method": method, "pet": float(r), "d_true": c.d,
                                "better_below": c.better_below})
    return out


def stage2_conditional(frame: pd.DataFrame, res, bootstrap: int, seed: int):
    """Stage 2 as before: E and beta frozen at stage 1's point estimate, bootstrap of stage 2
    alone (intervals conditional on stage 1)."""
    shared = {(g.key["task"], g.key["method"]): {"E": g.params["E"], "beta": g.params["beta"]}
              for g in res.groups if g.key["factor"] != "pet_params"}
    rest = frame[frame.factor == "pet_params"]
    return lawfit.fit(rest, "multiplicative", objective="huber", delta=1e-3, x="@factor",
                      by=["task", "method"], joint="factor", bootstrap=bootstrap, seed=seed,
                      fixed=lambda key: shared[(key["task"], key["method"])])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--grids", type=int, default=40)
    ap.add_argument("--bootstrap", type=int, default=100)
    ap.add_argument("--noise", type=float, default=0.005)
    ap.add_argument("--no-conditional", action="store_true",
                    help="skip the conditional (E, beta frozen) comparison")
    add_shard_arguments(ap, "grid")
    args = ap.parse_args()
    t0 = time.perf_counter()
    truth_x = true_crossings()
    rows = []
    grids = range(args.start, args.start + args.grids) if args.from_csv is None else range(0)
    for grid in grids:
        frame = paper_grid(noise=args.noise, seed=1000 + grid)
        res = recipes.zhang2024(frame, bootstrap=args.bootstrap, seed=grid)
        fits = {"two-stage bootstrap": res}
        if not args.no_conditional:
            fits["conditional (E, beta frozen)"] = stage2_conditional(frame, res, args.bootstrap,
                                                                      grid)
        for how, r in fits.items():
            for g in r.groups:
                if g.key.get("factor") != "pet_params":
                    continue
                task, method = g.key["task"], g.key["method"]
                tr = paper.law_params(task, method, "pet_params")
                iv = g.interval(LEVEL)
                for p in ("A", "alpha"):
                    j = g.law.params.index(p)
                    lo, hi = (iv[0][j], iv[1][j]) if iv else (np.nan, np.nan)
                    rows.append({"grid": grid, "how": how, "kind": "parameter", "task": task,
                                 "method": method, "what": p, "truth": tr[p],
                                 "estimate": g.params[p], "lo": lo, "hi": hi,
                                 "covered": bool(lo <= tr[p] <= hi),
                                 "interval": g.interval_status,
                                 "failed_share": (g.info.get("bootstrap") or {}).get(
                                     "failed_share")})
            # critical sizes along PET size: FMT at 1B (stage 1) vs each PET group (stage 2)
            for tx in truth_x:
                gf = res.group(task=tx["task"], method="fmt", factor="model_params")
                gp = r.group(task=tx["task"], method=tx["method"], factor="pet_params")
                row = crossings(at_x(gf, 1e9, {}), at_x(gp, tx["pet"], {}), 1.0,
                                names=("fmt", tx["method"]), level=LEVEL)
                same = [c for c in row.crossings if c.better_below == tx["better_below"]]
                c = min(same, key=lambda c: abs(math.log(c.d / tx["d_true"])), default=None)
                rows.append({"grid": grid, "how": how, "kind": "critical", "task": tx["task"],
                             "method": tx["method"], "what": f"D* at pet {tx['pet']:g}",
                             "truth": tx["d_true"], "estimate": c.d if c else np.nan,
                             "lo": c.lo if c else np.nan, "hi": c.hi if c else np.nan,
                             "covered": bool(c and c.lo <= tx["d_true"] <= c.hi),
                             "interval": gp.interval_status, "failed_share": None})
        print(f"[{time.perf_counter() - t0:6.0f}s] grid {grid + 1 - args.start}/{args.grids}",
              file=sys.stderr, flush=True)
    if args.from_csv:
        df = read_shards(args.from_csv, ["grid"])
        args.grids = int(df.grid.nunique())
    else:
        df = pd.DataFrame(rows)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "coverage_two_stage.csv", index=False)
    summary = []
    for (how, kind, method, what), s in df.groupby(["how", "kind", "method", "what"]):
        if kind == "critical":
            continue
        k, n = int(s.covered.sum()), len(s)
        summary.append({"intervals": how, "method": method, "parameter": what, "n": n,
                        "coverage": k / n, "cp95": clopper_pearson(k, n)})
    for how, s in df[df.kind == "critical"].groupby("how"):
        k, n = int(s.covered.sum()), len(s)
        summary.append({"intervals": how, "method": "fmt vs prompt/lora",
                        "parameter": f"critical D* along PET size ({len(truth_x)} true "
                        "crossings per grid)", "n": n, "coverage": k / n,
                        "cp95": clopper_pearson(k, n)})
    seconds = args.seconds if args.from_csv else time.perf_counter() - t0
    doc = {"grids": args.grids, "bootstrap": args.bootstrap, "noise": args.noise,
           "level": LEVEL, "seconds": seconds, "true_crossings": truth_x, "summary": summary,
           "withheld_intervals": int((df.interval == "withheld").sum()),
           "goal": "each parameter between 0.90 and 0.98 at the 95% level"}
    (out / "coverage_two_stage.json").write_text(json.dumps(doc, indent=2) + "\n")
    table = pd.DataFrame([{**s, "cp95": f"[{s['cp95'][0]:.3f}, {s['cp95'][1]:.3f}]",
                           "coverage": f"{s['coverage']:.3f}"} for s in summary])
    text = [f"{args.grids} simulated paper grids (noise sd {args.noise}, 3 seeds), bootstrap "
            f"{args.bootstrap}, nominal level 95%; {seconds or float('nan'):.0f} s wall{args.note}.", "",
            table.to_markdown(index=False), "",
            f"Intervals withheld (too many failed refits): {doc['withheld_intervals']}."]
    (out / "coverage_two_stage.md").write_text("\n".join(text) + "\n")
    print("\n".join(text))


if __name__ == "__main__":
    main()

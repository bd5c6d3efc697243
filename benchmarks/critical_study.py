"""Synthetic coverage study of critical data sizes.

Data: the paper's grid (Zhang et al. 2024, Table 1b; model-size series, 1B-16B x the method's
finetuning sizes, 3 seeds) drawn from Table 4's parameters plus Gaussian noise (sd 0.005 by
default). Each replicate fits every method of a task separately (multiplicative law, summed
Huber(1e-3), bootstrap B), then computes the crossings of each pair at the five model sizes and
checks whether each true crossing (of the Table 4 curves) lies inside the 95% interval of the
fitted crossing that goes the same way (same method better below).

    nice .venv/bin/python benchmarks/critical_study.py [--reps 30] [--bootstrap 200]

Writes benchmarks/results/critical_study.csv (one row per replicate x pair x size x true root),
critical_study.md (the summary) and example figures under docs/figures/ (from replicate 0).
Replicate r of a task draws its noise from the seed (crc32(task), r) and bootstraps with seed r,
so a run is reproducible and shards: ``--start S --reps K --out DIR_i`` in several processes,
then ``--from-csv DIR_1/critical_study.csv ...`` summarises them together.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shards import add_shard_arguments, read_shards  # noqa: E402

import lawfit  # noqa: E402
from lawfit import paper  # noqa: E402
from lawfit.analysis.critical import critical, crossings  # noqa: E402
from lawfit.laws import get_law  # noqa: E402
from lawfit.result import GroupFit  # noqa: E402
from lawfit.simulate import paper_grid  # noqa: E402

SIZES = paper.MODEL_SIZES
CASES = {"wmt14_en_de": [("prompt", "lora"), ("fmt", "prompt"), ("fmt", "lora")],
         "wmt19_en_zh": [("prompt", "lora"), ("fmt", "lora")]}


def true_group(task, method):
    law = get_law("multiplicative")
    p = paper.law_params(task, method, "model_params")
    d = paper.finetune_sizes(task, method)
    return GroupFit({"task": task, "method": method}, law, 0, "", 0.0,
                    np.array([p[k] for k in law.params]), np.zeros((0, 4)), None,
                    {"x": (1e9, 16e9), "d": (min(d), max(d))})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--noise", type=float, default=0.005)
    add_shard_arguments(ap, "replicate")
    args = ap.parse_args()
    t0 = time.perf_counter()
    rows = []
    for task, pairs in (CASES.items() if args.from_csv is None else ()):
        methods = sorted({m for p in pairs for m in p})
        truth = {}
        for a, b in pairs:
            for x in SIZES:
                truth[(a, b, x)] = crossings(true_group(task, a), true_group(task, b), x,
                                             names=(a, b)).crossings
        base = paper_grid(noise=0.0, seeds=3, seed=0, tasks=(task,), methods=tuple(methods))
        base = base[base.factor == "model_params"].reset_index(drop=True)
        for rep in range(args.start, args.start + args.reps):
            rng = np.random.default_rng([zlib.crc32(task.encode()), rep])
            f = base.assign(loss=base.loss_true + rng.normal(0, args.noise, len(base)))
            res = lawfit.fit(f, "multiplicative", bootstrap=args.bootstrap, seed=rep)
            for a, b in pairs:
                cr = critical(res, (a, b), at={"model_params": list(SIZES)})
                if rep == 0 and task == "wmt14_en_de" and (a, b) == ("fmt", "prompt"):
                    from lawfit.plot import plot_critical, plot_fit
                    figs = ROOT / "docs" / "figures"
                    plot_critical(cr, figs, name="critical_example", formats=("png",))
                    sub = type(res)(**{**res.__dict__, "groups": tuple(
                        g for g in res.groups if g.key["method"] in (a, b))})
                    plot_fit(sub, f[f.method.isin([a, b])], figs, name="fit_example",
                             formats=("png",))
                for row in cr.rows:
                    true_roots = truth[(a, b, row.x)]
                    base_row = {"task": task, "a": a, "b": b, "x": row.x, "rep": rep,
                                "n_roots_true": len(true_roots),
                                "n_roots_fit": len(row.crossings),
                                "p_no_crossing": row.p_no_crossing}
                    if not true_roots:
                        rows.append(base_row | {"root": 0, "d_true": np.nan})
                    for j, tr in enumerate(true_roots):
                        same = [c for c in row.crossings if c.better_below == tr.better_below]
                        c = min(same, key=lambda c: abs(math.log(c.d / tr.d)), default=None)
                        rows.append(base_row | {
                            "root": j + 1, "d_true": tr.d, "extrapolated_true": tr.extrapolated,
                            "d_fit": c.d if c else np.nan, "lo": c.lo if c else np.nan,
                            "hi": c.hi if c else np.nan,
                            "covered": bool(c and c.lo <= tr.d <= c.hi),
                            "found": c is not None,
                            "log10_width": (math.log10(c.hi / c.lo) if c and c.lo > 0
                                            and math.isfinite(c.hi) else np.inf),
                            "extrapolated_fit": c.extrapolated if c else np.nan,
                            "p_exists": c.p_exists if c else np.nan})
            print(f"[{time.perf_counter() - t0:6.0f}s] {task} replicate {rep + 1 - args.start}/"
                  f"{args.reps}", file=sys.stderr, flush=True)
    if args.from_csv:
        df = read_shards(args.from_csv, ["task", "rep"])
        args.reps = int(df.groupby("task").rep.nunique().min())
    else:
        df = pd.DataFrame(rows)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "critical_study.csv", index=False)
    cr_rows = df[df.root > 0].copy()
    cr_rows["extrapolated_true"] = cr_rows.extrapolated_true.astype(bool)
    summ = cr_rows.groupby(["task", "a", "b", "x", "root"]).agg(
        d_true=("d_true", "first"), extrapolated=("extrapolated_true", "first"),
        found=("found", "mean"), coverage=("covered", "mean"),
        median_log10_width=("log10_width", "median"),
        median_d_fit=("d_fit", "median")).reset_index()
    none = df[df.root == 0].groupby(["task", "a", "b", "x"]).agg(
        share_fit_no_crossing=("n_roots_fit", lambda s: float(np.mean(s == 0))),
        mean_p_no_crossing=("p_no_crossing", "mean")).reset_index()
    seconds = args.seconds if args.from_csv else time.perf_counter() - t0
    ins, outs = summ[~summ.extrapolated], summ[summ.extrapolated]
    text = [f"{args.reps} replicates per task, noise sd {args.noise}, bootstrap "
            f"{args.bootstrap}, nominal level 95%; {seconds or float('nan'):.0f} s wall{args.note}.", "",
            f"Overall coverage: {cr_rows.covered.mean():.3f} over {len(cr_rows)} true "
            f"crossings (inside the measured D of both methods: "
            f"{cr_rows[~cr_rows.extrapolated_true.astype(bool)].covered.mean():.3f}, "
            f"n={int((~cr_rows.extrapolated_true.astype(bool)).sum())}; extrapolated: "
            f"{cr_rows[cr_rows.extrapolated_true.astype(bool)].covered.mean():.3f}, "
            f"n={int(cr_rows.extrapolated_true.astype(bool).sum())}).",
            f"Median interval width (log10 D): inside the data {ins.median_log10_width.median():.3f}, "
            f"extrapolated {outs.median_log10_width.median():.3f}.", "",
            "Per pair, size and true root:", "",
            summ.to_markdown(index=False, floatfmt=".4g"), "",
            "Pairs whose Table 4 curves never cross (share of replicates whose fitted curves "
            "do not cross either; mean share of bootstrap draws without a crossing):", "",
            none.to_markdown(index=False, floatfmt=".3g")]
    (out / "critical_study.md").write_text("\n".join(text) + "\n")
    print("\n".join(text))


if __name__ == "__main__":
    main()

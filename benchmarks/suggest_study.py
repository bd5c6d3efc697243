"""Does `lawfit suggest` choose better runs than chance? A simulation study.

Truth: the En-De prompt-tuning and LoRA curves of Zhang et al. 2024, Table 4 (model-size
factor). Initial campaign per replicate: both methods at 1B, 2B and 4B (no 8B or 16B model) x
finetuning sizes (default 8e3, 2e4, 4e4, 6e4, 8e4, 1e5), one seed per configuration, Gaussian noise
sd 0.005. Target: the 95% interval of the Prompt-vs-LoRA crossing at 8B. Candidates: both methods
x {1, 2, 4, 8, 16}B x the paper's 11 PET finetuning sizes (110 runs). Every strategy adds 8 runs,
whose losses are drawn from the true curves plus noise; the runs are refitted (bootstrap) and the
crossing's interval is measured with lawfit.analysis.critical.

Strategies:
- suggest: `lawfit.suggest` with unit cost (the comparison is per run), n = 8;
- random: 8 distinct candidates drawn uniformly (``--random`` batches per replicate);
- largest: the simple heuristic "more runs at the largest measured model": 4B, both methods, at
  4 finetuning sizes spread over the range;
- suggest-flops: `lawfit.suggest` with the default cost (model_params x finetune_examples), n = 8
  (fewer FLOPs, for reference).

    nice .venv/bin/python benchmarks/suggest_study.py [--reps 6] [--bootstrap 100] [--random 2]

Writes benchmarks/results/suggest_study.json, suggest_study.md and suggest_study.png. Widths are in
decades (log10 D); an interval that reaches beyond the searched D range (1..1e12) or a refit without
the crossing counts as infinitely wide (medians are still defined while that happens in fewer than
half of the replicates).
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import lawfit  # noqa: E402
from lawfit import paper  # noqa: E402
from lawfit.analysis.critical import crossings  # noqa: E402
from lawfit.analysis.suggest import CrossingTarget, suggest  # noqa: E402
from lawfit.laws import get_law  # noqa: E402
from lawfit.result import GroupFit  # noqa: E402
from lawfit.simulate import simulate  # noqa: E402

TASK, METHODS, X_TARGET = "wmt14_en_de", ("prompt", "lora"), 8e9
SIZES = paper.MODEL_SIZES[:4] + (16e9,)
D_ALL = paper.FINETUNE_EXAMPLES["pet"]
LAW = get_law("multiplicative")


def truth(method: str) -> dict:
    return paper.law_params(TASK, method, "model_params")


def true_crossing() -> float:
    gs = [GroupFit({"method": m}, LAW, 0, "", 0.0, np.array([truth(m)[k] for k in LAW.params]),
                   np.zeros((0, 4)), None, {"x": (1e9, 16e9), "d": (8e3, 1e5)}) for m in METHODS]
    row = crossings(gs[0], gs[1], X_TARGET, names=METHODS)
    assert len(row.crossings) == 1, row.crossings
    return row.crossings[0].d


def runs_at(configs: pd.DataFrame, noise: float, seed: int) -> pd.DataFrame:
    """Simulated runs (one seed) at the given (method, model_params, finetune_examples) rows."""
    out = configs[["method", "model_params", "finetune_examples"]].copy()
    out["task"] = TASK
    loss = []
    for m, x, d in zip(out["method"], out["model_params"], out["finetune_examples"]):
        mean = float(LAW.predict(truth(m), x=np.array([x]), d=np.array([d]))[0])
        # common random numbers: a configuration gets the same noise whichever strategy picks it
        rng = np.random.default_rng([seed, METHODS.index(m), int(x), int(d)])
        loss.append(mean + rng.normal(0.0, noise))
    out["loss"] = loss
    out["seed"] = 99             # a new seed, whatever the configuration
    return out


def initial(d_values, noise, seed, seeds) -> pd.DataFrame:
    parts = []
    for i, m in enumerate(METHODS):
        parts.append(simulate(LAW, truth(m), {"model_params": [1e9, 2e9, 4e9],
                                              "finetune_examples": list(d_values)},
                              noise=noise, seeds=seeds, seed=seed * 10 + i,
                              extra={"task": TASK, "method": m}))
    return pd.concat(parts, ignore_index=True)[["task", "method", "model_params",
                                                "finetune_examples", "seed", "loss"]]


def width(frame: pd.DataFrame, bootstrap: int, seed: int, d_true: float) -> dict:
    """Refit and measure the 8B crossing's interval (the crossing nearest the true one)."""
    fr = lawfit.fit(frame, "multiplicative", bootstrap=bootstrap, seed=seed)
    row = crossings(fr.group(method=METHODS[0]), fr.group(method=METHODS[1]), X_TARGET,
                    names=METHODS)
    if not row.crossings:
        return {"width": math.inf, "d": math.nan, "lo": math.nan, "hi": math.nan,
                "covers": False}
    c = min(row.crossings, key=lambda c: abs(math.log(c.d / d_true)))
    w = (math.log10(c.hi) - math.log10(c.lo)) if (c.lo > 0 and math.isfinite(c.hi)) else math.inf
    return {"width": w, "d": c.d, "lo": c.lo, "hi": c.hi, "covers": bool(c.lo <= d_true <= c.hi)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=6)
    ap.add_argument("--bootstrap", type=int, default=100)
    ap.add_argument("--random", type=int, default=2, help="random batches per replicate")
    ap.add_argument("--noise", type=float, default=0.005)
    ap.add_argument("--initial-d", default="8e3,2e4,4e4,6e4,8e4,1e5")
    ap.add_argument("--initial-seeds", type=int, default=3, help="seeds per initial configuration")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    d_init = [float(v) for v in args.initial_d.split(",")]
    t_start = time.perf_counter()
    d_true = true_crossing()
    cands = pd.DataFrame([{"method": m, "model_params": x, "finetune_examples": d}
                          for m in METHODS for x in SIZES for d in D_ALL])
    heur_d = [D_ALL[0], D_ALL[3], D_ALL[6], D_ALL[-1]]      # 8e3, 3e4, 6e4, 1e5
    heur = pd.DataFrame([{"method": m, "model_params": 4e9, "finetune_examples": d}
                         for m in METHODS for d in heur_d])
    rows, picks = [], []
    suggest_seconds = []
    for rep in range(args.reps):
        base = initial(d_init, args.noise, seed=1000 + rep, seeds=args.initial_seeds)
        fit0 = lawfit.fit(base, "multiplicative", bootstrap=args.bootstrap, seed=rep)
        w0 = width(base, args.bootstrap, rep, d_true)
        rows.append({"rep": rep, "strategy": "initial", "batch": 0, **w0, "cost": 0.0,
                     "expected_width": math.nan})
        batches = {}
        for name, cost in (("suggest", "1"), ("suggest-flops", None)):
            t0 = time.perf_counter()
            try:
                s = suggest(base, CrossingTarget(METHODS, X_TARGET), candidates=cands,
                            cost=cost, n=8, fit_result=fit0)
            except lawfit.DataError as exc:      # e.g. the fit has no crossing at 8B
                # counted as adding nothing (the initial interval): the conservative choice
                print(f"rep {rep} {name}: {exc}", file=sys.stderr)
                batches[name] = (cands.iloc[:0], math.nan)
                continue
            suggest_seconds.append(time.perf_counter() - t0)
            batches[name] = (s.runs[["method", "model_params", "finetune_examples"]],
                             s.width_after)
            for r in s.runs.to_dict("records"):
                picks.append({"rep": rep, "strategy": name, **{k: r[k] for k in (
                    "order", "method", "model_params", "finetune_examples", "width_after")}})
        rng = np.random.default_rng(5000 + rep)
        for b in range(args.random):
            batches[f"random{b}"] = (cands.iloc[rng.choice(len(cands), 8, replace=False)],
                                     math.nan)
        batches["largest"] = (heur, math.nan)
        for name, (batch, expected) in batches.items():
            new = runs_at(batch.reset_index(drop=True), args.noise, seed=9000 + rep)
            frame = pd.concat([base, new], ignore_index=True)
            w = width(frame, args.bootstrap, rep, d_true)
            cost = float((batch["model_params"] * batch["finetune_examples"]).sum())
            rows.append({"rep": rep, "strategy": name.rstrip("0123456789") if name.startswith(
                "random") else name, "batch": name, **w, "cost": cost,
                "expected_width": expected})
        done = pd.DataFrame(rows)
        last = done[done.rep == rep].groupby("strategy")["width"].median()
        print(f"rep {rep + 1}/{args.reps} ({time.perf_counter() - t_start:.0f}s): "
              + ", ".join(f"{k} {v:.3g}" for k, v in last.items()), file=sys.stderr, flush=True)
    wall = time.perf_counter() - t_start
    df = pd.DataFrame(rows)
    order = ["initial", "suggest", "random", "largest", "suggest-flops"]
    summary = []
    for s in order:
        d = df[df.strategy == s]
        if len(d) == 0:
            continue
        summary.append({"strategy": s, "batches": len(d),
                        "median_width_decades": float(np.median(d["width"])),
                        "share_infinite": float(np.mean(~np.isfinite(d["width"]))),
                        "coverage_of_truth": float(np.mean(d["covers"])),
                        "median_cost_flops": float(np.median(d["cost"])),
                        "median_expected_width": float(np.nanmedian(d["expected_width"]))
                        if d["expected_width"].notna().any() else None})
    summ = pd.DataFrame(summary).set_index("strategy")
    med = summ["median_width_decades"]
    ratio_random = med["suggest"] / med["random"]
    ratio_largest = med["suggest"] / med["largest"]
    # per replicate: suggest's width over the median of that replicate's random batches
    per = []
    for rep in range(args.reps):
        d = df[df.rep == rep]
        s_w = d[d.strategy == "suggest"]["width"]
        r_w = d[d.strategy == "random"]["width"]
        # only where both are bounded (an unbounded random interval makes the ratio 0)
        if len(s_w) and len(r_w) and np.isfinite(np.median(r_w)) and np.isfinite(s_w.iloc[0]):
            per.append(float(s_w.iloc[0] / np.median(r_w)))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    doc = {"settings": vars(args) | {"true_crossing": d_true, "x": X_TARGET, "task": TASK,
                                     "methods": list(METHODS), "candidates": len(cands),
                                     "machine": "2 shared cores (other jobs running)"},
           "summary": json.loads(summ.reset_index().to_json(orient="records")),
           "ratio_of_medians_suggest_over_random": ratio_random,
           "ratio_of_medians_suggest_over_largest": ratio_largest,
           "median_per_replicate_ratio_suggest_over_random": float(np.median(per)) if per else None,
           "replicates_with_both_bounded": len(per),
           "target_met": bool(ratio_random <= 0.6),
           "wall_seconds": wall, "suggest_seconds_median": float(np.median(suggest_seconds)),
           "rows": json.loads(df.to_json(orient="records")), "picks": picks}
    (out / "suggest_study.json").write_text(json.dumps(doc, indent=2) + "\n")
    md = [f"# suggest study ({args.reps} replicates, bootstrap {args.bootstrap}, "
          f"{args.random} random batches per replicate; wall {wall:.0f} s on 2 shared cores)", "",
          f"True crossing at 8B: {d_true:.4g} (10^{math.log10(d_true):.3f}).", "",
          summ.to_markdown(floatfmt=".3g"), "",
          f"suggest / random (ratio of medians): {ratio_random:.3f}; median per-replicate ratio "
          f"{doc['median_per_replicate_ratio_suggest_over_random']:.3f} (over the "
          f"{len(per)} replicates where both intervals are bounded); "
          f"suggest / largest: {ratio_largest:.3f}; target (<= 0.6) "
          f"{'met' if doc['target_met'] else 'NOT met'}.",
          f"suggest's own time per call (fit given): median {doc['suggest_seconds_median']:.2f} s."]
    (out / "suggest_study.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        ax = axes[0]
        strat = [s for s in order if s in summ.index]
        for i, s in enumerate(strat):
            w = df[df.strategy == s]["width"].to_numpy()
            w = np.where(np.isfinite(w), w, np.nan)
            ax.scatter(np.full(len(w), i) + np.linspace(-0.15, 0.15, len(w)), w, s=14)
            ax.hlines(med[s], i - 0.3, i + 0.3, color="k")
        ax.set_xticks(range(len(strat)), strat, rotation=20)
        ax.set_ylabel("95% interval width of the 8B crossing (decades)")
        ax.set_title("after adding 8 runs (bar: median)")
        ax = axes[1]
        pk = pd.DataFrame(picks)
        if len(pk):
            pk = pk[pk.strategy == "suggest"]
            for m, mk in zip(METHODS, ("o", "s")):
                q = pk[pk.method == m]
                jit = np.random.default_rng(0).normal(0, 0.03, len(q))
                ax.scatter(q["finetune_examples"] * np.exp(jit), q["model_params"] * np.exp(jit),
                           marker=mk, alpha=0.5, label=m)
            ax.axvline(d_true, color="grey", ls=":", label="true crossing at 8B")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("finetune_examples")
            ax.set_ylabel("model_params")
            ax.set_title("runs suggest picked (all replicates)")
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "suggest_study.png", dpi=110)
    except ImportError:
        pass


if __name__ == "__main__":
    main()

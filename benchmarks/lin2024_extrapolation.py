"""Extrapolating real finetuning curves: Lin et al. 2024's runs, every law and procedure.

Protocol (issue 11, as Lin et al. 2024 evaluate): for each of the 30 models of a dataset, fit on
the runs with D <= 1/8 (and 1/128) of the largest finetuning set, predict the loss at the largest,
D = 1,638,400; report the mean |error| in nats over the models and the Pearson correlation of
predicted vs actual loss.

    nice .venv/bin/python benchmarks/lin2024_extrapolation.py            # both datasets
    nice .venv/bin/python benchmarks/lin2024_extrapolation.py --data DIR  # another lin2024 folder

Procedures (no per-dataset setting anywhere; a third dataset is held back for checking):

- ``power``: lawfit ``power`` (A D^-alpha + E, Huber on the loss) per model, D > 0.
- ``multiplicative/family``: lawfit ``multiplicative`` per family (X = model_params), D > 0.
- ``rectified``: lawfit ``rectified`` (Lin et al.'s law, B / (D_l + D^beta) + E) per model with the
  base-model row D = 0, squared error on log loss (the law's default, as Lin et al. fit it).
- ``rectified-mult/family``: A X^-alpha / (D_l + D^beta) + E per family with the base rows
  (a user law defined below with ``lawfit.law``), squared error on log loss.
- ``ats``: Lin et al.'s AtS: their phase detection, then a log-log line on the power phase.
- ``validate``: lawfit's pre-power procedure (lawfit.prepower), then the same log-log line.
- ``validate+power``: lawfit's procedure, then lawfit ``power`` on the power phase.
- ``validate+mult/family``: lawfit's procedure per model, then ``multiplicative`` per family.

Writes benchmarks/results/lin2024_extrapolation.json (and .md, the README table).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import lawfit  # noqa: E402
from lawfit import prepower  # noqa: E402

TARGET = 1_638_400
FRACTIONS = {"1/8": 8, "1/128": 128}
# Lin et al. 2024 and lawfit before this change, 1/8, from issue 11 (mean |error|, nats)
PUBLISHED = {"wmt19": {"lawfit power (before)": 0.222, "lawfit multiplicative/family (before)": 0.339,
                       "Lin et al. rectified (their code)": 0.100, "Lin et al. AtS": 0.056},
             "gigaword": {"lawfit power (before)": 0.044,
                          "lawfit multiplicative/family (before)": 0.097,
                          "Lin et al. rectified (their code)": 0.023, "Lin et al. AtS": 0.016}}


@lawfit.law(params={"A": (1e-2, 1e6), "alpha": (0.0, 1.0), "Dl": (1e-2, 1e7),
                    "beta": (0.0, 2.0), "E": (1e-3, 10.0)},
            variables=("model_params", "finetune_examples"), objective="mse-log")
def rectified_mult(p, X, D):
    """The multiplicative law with the rectified D term (model size carried by A X^-alpha)."""
    return p["A"] * X ** -p["alpha"] / (p["Dl"] + D ** p["beta"]) + p["E"]


def _line_predict(d, y, at):
    b, a = np.polyfit(np.log(d), np.log(y), 1)
    return float(np.exp(a + b * np.log(at)))


def _fit_predict(train, law, by, at_frame, **kw):
    res = lawfit.fit(train, law, by=by, **kw)
    pred = res.predict(at_frame)
    return pred, res


def run(frame: pd.DataFrame, div: int, log=print) -> dict:
    cut = TARGET / div
    truth = frame[frame.finetune_examples == TARGET].set_index("model")["loss"]
    models = sorted(truth.index)
    train_all = frame[frame.finetune_examples <= cut]
    train_pos = train_all[train_all.finetune_examples > 0]
    fam = frame.drop_duplicates("model").set_index("model")[["family", "model_params"]]
    at = pd.DataFrame({"model": models, "family": fam.loc[models, "family"].to_numpy(),
                       "model_params": fam.loc[models, "model_params"].to_numpy(),
                       "finetune_examples": float(TARGET)})
    preds, notes, secs = {}, {}, {}

    def record(name, values, extra=None, t0=None):
        preds[name] = np.asarray(values, float)
        secs[name] = round(time.perf_counter() - t0, 1)
        if extra:
            notes[name] = extra
        log(f"  {name:<24} mean |err| {np.mean(np.abs(preds[name] - truth[models].to_numpy())):.4f}"
            f"  ({secs[name]} s)")

    def lawfit_pred(train, law, by, **kw):
        res = lawfit.fit(train, law, by=by, x=None, **kw)
        g = {tuple(str(v) for v in gf.key.values()): gf for gf in res.groups}
        out, status = [], {}
        for m in models:
            key = tuple(str(at.set_index("model").loc[m, c]) if c != "model" else m for c in by)
            gf = g[key]
            v = np.array([[at.set_index("model").loc[m, col] for col in
                           (res.columns[r] for r in gf.law.variables)]], float)
            out.append(float(gf.loss(v)[0]))
            status[gf.status] = status.get(gf.status, 0) + 1
        return out, status

    t0 = time.perf_counter()
    p, st = lawfit_pred(train_pos, "power", ["model"])
    record("power", p, {"status": st}, t0)
    t0 = time.perf_counter()
    p, st = lawfit_pred(train_pos, "multiplicative", ["family"])
    record("multiplicative/family", p, {"status": st}, t0)
    t0 = time.perf_counter()
    p, st = lawfit_pred(train_all, "rectified", ["model"])
    record("rectified", p, {"status": st}, t0)
    t0 = time.perf_counter()
    p, st = lawfit_pred(train_all, rectified_mult, ["family"])
    record("rectified-mult/family", p, {"status": st}, t0)
    # pre-power procedures
    phases = {}
    for method in ("ats", "validate"):
        t0 = time.perf_counter()
        out, kept = [], []
        for m in models:
            c = train_pos[train_pos.model == m].sort_values("finetune_examples")
            ph = prepower.power_phase(c.finetune_examples, c.loss, method)
            keep = c[c.finetune_examples >= ph.start]
            kept.append(keep)
            phases.setdefault(method, []).append(ph.n_excluded)
            out.append(_line_predict(keep.finetune_examples, keep.loss, TARGET))
        record(method, out, {"excluded_runs_mean": float(np.mean(phases[method]))}, t0)
        if method == "validate":
            phase_frame = pd.concat(kept)
    t0 = time.perf_counter()
    p, st = lawfit_pred(phase_frame, "power", ["model"])
    record("validate+power", p, {"status": st}, t0)
    t0 = time.perf_counter()
    p, st = lawfit_pred(phase_frame, "multiplicative", ["family"])
    record("validate+mult/family", p, {"status": st}, t0)
    y = truth[models].to_numpy()
    return {name: {"mean_abs_error": float(np.mean(np.abs(v - y))),
                   "pearson": float(np.corrcoef(v, y)[0, 1]), "seconds": secs[name],
                   **notes.get(name, {})}
            for name, v in preds.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(Path(os.environ.get(
        "LAWFIT_REFERENCE_DATA", ROOT.parent / "shared" / "data")) / "lin2024"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    results = {}
    paths = sorted(Path(args.data).glob("*.csv"))
    if not paths:
        ap.error(f"no runs tables (*.csv) in {args.data}: set LAWFIT_REFERENCE_DATA or --data")
    for path in paths:
        frame = pd.read_csv(path)
        task = str(frame.task.iloc[0])
        for frac, div in FRACTIONS.items():
            print(f"{task} {frac}", flush=True)
            results.setdefault(task, {})[frac] = run(frame, div)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    doc = {"protocol": "fit D <= 1/8 or 1/128 of 1,638,400 per model (or family), predict at "
                       "1,638,400; mean |error| in nats and Pearson r over the models",
           "command": "nice .venv/bin/python benchmarks/lin2024_extrapolation.py",
           "published": PUBLISHED, "results": results}
    (out / "lin2024_extrapolation.json").write_text(json.dumps(doc, indent=1))
    tasks = list(results)
    lines = ["| procedure | " + " | ".join(f"{t} {f}" for t in tasks for f in FRACTIONS) + " |",
             "|---|" + "---|" * (len(tasks) * len(FRACTIONS))]
    for name in results[tasks[0]]["1/8"]:
        cells = [f"{results[t][f][name]['mean_abs_error']:.3f} (r {results[t][f][name]['pearson']:.2f})"
                 for t in tasks for f in FRACTIONS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    (out / "lin2024_extrapolation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

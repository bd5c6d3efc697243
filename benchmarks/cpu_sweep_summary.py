"""Summarise the committed CPU sweep (data/cpu_sweep/): seed-mean test loss per method x model size x
finetuning set size, and whether loss falls with model size and with data for each method.

    python benchmarks/cpu_sweep_summary.py [DIR]   ->  benchmarks/results/cpu_sweep_summary.md
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lawfit.io.runs import read_runs  # noqa: E402


def main():
    d = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "data" / "cpu_sweep")
    df, _ = read_runs(d)  # the directory as the fitter reads it
    lines = [f"# CPU sweep summary ({len(df)} runs, {df.seed.nunique()} seeds)\n"]
    for col, name in (("loss", "test loss (nats/token)"), ("zero_shot_loss", "zero-shot loss on synth_summarise"),
                      ("chrf", "chrF (greedy, 32 test sentences)")):
        lines.append(f"\n## {name}, mean over seeds (std)\n")
        for method, g in df.groupby("method"):
            t = g.groupby(["model_params", "finetune_examples"])[col].agg(["mean", "std"]).reset_index()
            ns = sorted(t.finetune_examples.unique())
            lines.append(f"\n### {method}\n\n| params \\ D_f | " + " | ".join(map(str, ns)) + " |")
            lines.append("|---" * (len(ns) + 1) + "|")
            for n_params, gg in t.groupby("model_params"):
                cells = [f"{m:.3f} ({s:.3f})" for m, s in zip(gg["mean"], gg["std"])]
                lines.append(f"| {n_params} | " + " | ".join(cells) + " |")
    lines.append("\n## monotonicity of the seed-mean test loss\n")
    for method, g in df.groupby("method"):
        m = g.groupby(["model_params", "finetune_examples"]).loss.mean().unstack()
        dn = np.diff(m.values, axis=1)  # along data
        dm = np.diff(m.values, axis=0)  # along model size
        lines.append(f"- {method}: loss falls with data in {int((dn < 0).sum())}/{dn.size} adjacent pairs, "
                     f"with model size in {int((dm < 0).sum())}/{dm.size}; "
                     f"range {m.values.min():.3f}..{m.values.max():.3f}; "
                     f"mean base (before finetuning) loss {g.base_loss.mean():.3f}")
    out = Path(__file__).parent / "results" / "cpu_sweep_summary.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

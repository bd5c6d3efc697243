"""Training throughput of the runners' Transformer (tokens/s) and model FLOPs utilisation (MFU).

    python benchmarks/bench_runners.py [--threads N] [--sizes 16,32,64,128] [--steps 20]
    python benchmarks/bench_runners.py --device [--out DIR]      # one short command on a GPU node
    python benchmarks/bench_runners.py --device --smoke          # the same code path, tiny, on a CPU

Measures the full training step (forward, backward, AdamW update; FMT, i.e. all weights) through
the runners' own `train_step` (batch sharded over all visible devices, parameters replicated), after
a compile step and two warm-up steps. Timing: `--windows` windows of `--steps` steps each, one
device sync at the end of each window (no sync per step, so dispatch overlaps compute as in
training); the median window gives tokens/s.

Model FLOPs per token = 6 N + 12 L T d (N: all parameters, the tied embedding counted once as the
output projection's matrix product; L T d: attention scores and values over the full context T, the
PaLM convention, also for causal attention). MFU = model FLOP/s / (peak per device x number of
devices). Peak: `--peak-tflops`, else a dense bf16 default for known devices (H100 SXM and H200
989 TFLOP/s, H100 PCIe 756, A100 312); without one, MFU is not reported.

`--device` mode (bf16): the sweep model ladder at the sweep's default shapes (batch 32, 65 tokens),
then d_model 512, 1024, 2048 (8 layers, head dim 128, 1024 tokens per row, vocab 32768, batch 16
rows per device), all with the runners' default attention ("auto": cuDNN flash attention where it
applies on a GPU, else XLA; the table names the one used), and d_model 2048 again with XLA's
attention. Prints a table, writes JSON (`--out` directory or benchmarks/results/).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

# dense bf16 peak per device, TFLOP/s (vendor datasheets, without sparsity)
PEAK_BF16_TFLOPS = (("H100 PCIe", 756.0), ("H100", 989.0), ("H200", 989.0), ("GH200", 989.0), ("A100", 312.0))


def default_peak(device_kind: str) -> float | None:
    """Dense bf16 peak TFLOP/s of one device of this kind, if known."""
    for key, peak in PEAK_BF16_TFLOPS:
        if key.lower() in device_kind.lower():
            return peak
    return None


def flops_per_token(cfg, n_params: int, seq: int) -> float:
    return 6.0 * n_params + 12.0 * cfg.n_layers * seq * cfg.d_model


def measure(cfg, *, batch: int, seq: int, dtype: str, steps: int, windows: int, attention: str = "auto",
            peak: float | None = None, label: str = "") -> dict:
    """Train-step throughput of one configuration (see the module docstring)."""
    import jax
    import numpy as np
    from flax import nnx

    from runners.device import jnp_dtype
    from runners.model import Transformer, attention_impl, param_count
    from runners.train import init_opt_state, optimizer, place_model, put_batch, split_model, train_step

    n_dev = jax.device_count()
    model = place_model(Transformer(cfg, rngs=nnx.Rngs(0), dtype=jnp_dtype(dtype), attention=attention))
    g, params, rest = split_model(model, nnx.Param)
    del model
    tx = optimizer(1e-4, 0.0, 0)
    st = init_opt_state(tx, params)
    rng = np.random.default_rng(0)
    toks = rng.integers(5, cfg.vocab_size, (batch, seq)).astype(np.int32)
    batch_dev = put_batch(toks, np.ones_like(toks, np.float32))
    t0 = time.perf_counter()
    params, st, loss = train_step(g, tx, params, rest, st, *batch_dev)
    loss0 = float(loss)  # waits for the compile and the first step
    compile_s = time.perf_counter() - t0
    for _ in range(2):
        params, st, loss = train_step(g, tx, params, rest, st, *batch_dev)
    jax.block_until_ready((params, st, loss))
    per_step = []
    for _ in range(windows):
        t0 = time.perf_counter()
        for _ in range(steps):
            params, st, loss = train_step(g, tx, params, rest, st, *batch_dev)
        jax.block_until_ready((params, st, loss))  # one sync per window
        per_step.append((time.perf_counter() - t0) / steps)
    med = statistics.median(per_step)
    n = param_count(cfg)
    tok_s = batch * seq / med
    model_tflops = flops_per_token(cfg, n, seq) * tok_s / 1e12
    r = dict(label=label or f"d{cfg.d_model}", d_model=cfg.d_model, n_layers=cfg.n_layers, n_heads=cfg.n_heads,
             vocab=cfg.vocab_size, params=n, batch=batch, seq=seq, dtype=dtype,
             attention=attention_impl(attention, jnp_dtype(dtype), seq, cfg.d_model // cfg.n_heads),
             devices=n_dev, tokens_per_s=round(tok_s), median_step_s=med, window_step_s=per_step,
             compile_s=round(compile_s, 2), model_tflops=model_tflops, first_loss=loss0,
             final_loss=float(loss))
    if peak:
        r["peak_tflops_per_device"] = peak
        r["mfu"] = model_tflops / (peak * n_dev)
    return r


def _table(results: list[dict]) -> str:
    lines = ["| config | params | devices | batch x seq | dtype | attention | tokens/s | step ms | TFLOP/s | MFU |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['label']} | | | | | {r.get('attention', '')} | failed: {r['error'][:80]} | | | |")
            continue
        mfu = f"{100 * r['mfu']:.1f}%" if "mfu" in r else "n/a"
        lines.append(f"| {r['label']} | {r['params']:,} | {r['devices']} | {r['batch']} x {r['seq']} | {r['dtype']} | "
                     f"{r['attention']} | {r['tokens_per_s']:,} | {1e3 * r['median_step_s']:.2f} | "
                     f"{r['model_tflops']:.1f} | {mfu} |")
    return "\n".join(lines)


def device_configs(smoke: bool, n_dev: int):
    """(label, ModelConfig, batch, seq, attention) of the --device mode."""
    from runners.config import ModelConfig, ladder
    from runners.tasks import SyntheticTask
    v = SyntheticTask("translate").vocab_size
    out = []
    for c in ladder(v, 2 if smoke else 4):  # the sweep ladder at the sweep's default pretraining shapes
        out.append((f"ladder {c.name}", c, 32 * n_dev, 65, "auto"))
    widths = (64, 128) if smoke else (512, 1024, 2048)
    layers, seq, per_dev, vocab = (2, 64, 4, 512) if smoke else (8, 1024, 16, 32768)
    for d in widths:
        cfg = ModelConfig(vocab, d, layers, 2 if smoke else max(1, d // 128), name=f"L{layers}-d{d}")
        out.append((f"L{layers}-d{d}", cfg, per_dev * n_dev, seq, "auto"))
    lab, cfg, b, s, _ = out[-1]  # the widest again with XLA's attention (the reference for "auto")
    out.append((lab + " xla", cfg, b, s, "xla"))
    return out


def run_device_mode(a) -> dict:
    import jax

    from runners.device import resolve
    info = resolve("auto", a.dtype or "bfloat16")
    peak = a.peak_tflops or default_peak(info.device_kind)
    configs = device_configs(a.smoke, info.device_count)
    steps, windows = (2, 2) if a.smoke else (a.steps or 10, a.windows or 3)
    results = []
    for label, cfg, batch, seq, att in configs:
        try:
            r = measure(cfg, batch=batch, seq=seq, dtype=info.dtype, steps=steps, windows=windows,
                        attention=att, peak=peak, label=label)
        except Exception as e:  # noqa: BLE001 - one failing configuration (e.g. out of memory) is reported
            r = dict(label=label, attention=att, error=f"{type(e).__name__}: {str(e).splitlines()[0][:300]}")
        results.append(r)
        print(json.dumps({k: v for k, v in r.items() if k != "window_step_s"}), flush=True)
        jax.clear_caches()
    meta = dict(mode="device", smoke=a.smoke, device=info.to_dict(), peak_tflops_per_device=peak,
                jax=jax.__version__, host=platform.node(), steps_per_window=steps, windows=windows,
                note="median over windows of steps, one sync per window, after a compile step and 2 warm-up "
                     "steps; FMT train step (fwd+bwd+AdamW), batch sharded over all devices; MFU over all "
                     "devices' peak; model FLOPs 6N + 12 L T d per token")
    return {"meta": meta, "results": results}


def run_cpu_mode(a) -> dict:
    import jax

    from runners.config import ModelConfig
    from runners.device import resolve
    info = resolve("auto", a.dtype or "auto")
    load0 = os.getloadavg()
    results = []
    for d in [int(x) for x in a.sizes.split(",")]:
        cfg = ModelConfig(a.vocab, d, a.layers, max(1, d // 16) if d >= 32 else 2)
        results.append(measure(cfg, batch=a.batch, seq=a.seq + 1, dtype=info.dtype, steps=a.steps or 20,
                               windows=a.windows or 3, peak=a.peak_tflops or default_peak(info.device_kind)))
        print(json.dumps(results[-1]), flush=True)
    meta = dict(mode="sizes", device=info.to_dict(), machine=platform.processor() or platform.machine(),
                cpu_count=os.cpu_count(), threads=a.threads or "all", jax=jax.__version__,
                load_average_before=load0, load_average_after=os.getloadavg(),
                note="median over windows of steps, one sync per window; full FMT train step (fwd+bwd+AdamW)")
    return {"meta": meta, "results": results}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", action="store_true", help="accelerator mode: ladder + d_model 512-2048 in bf16")
    ap.add_argument("--smoke", action="store_true", help="with --device: tiny shapes (checks the path on a CPU)")
    ap.add_argument("--threads", type=int, default=None, help="limit XLA to N cores (default: all)")
    ap.add_argument("--sizes", default="16,32,64,128,256")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--steps", type=int, default=None, help="steps per timed window")
    ap.add_argument("--windows", type=int, default=None, help="timed windows (median reported)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--vocab", type=int, default=256)
    ap.add_argument("--dtype", default=None, help="compute dtype (default: bfloat16 with --device, else auto)")
    ap.add_argument("--peak-tflops", type=float, default=None, help="peak TFLOP/s of ONE device (default: known kinds)")
    ap.add_argument("--out", default=None, help="directory for the JSON (default benchmarks/results)")
    a = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from runners.sweep.execute import init_worker
    init_worker(a.threads)  # XLA's CPU threads and this process's cores, before jax is imported
    res = run_device_mode(a) if a.device else run_cpu_mode(a)
    dev = res["meta"]["device"]
    slug = "".join(ch if ch.isalnum() else "_" for ch in dev["device_kind"]).strip("_").lower()
    name = (f"bench_runners_device_{slug}{'_smoke' if a.smoke else ''}.json" if a.device
            else f"bench_runners_{dev['backend']}_{a.threads or 'all'}threads.json")
    out = Path(a.out) if a.out else Path(__file__).parent / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / name).write_text(json.dumps(res, indent=1) + "\n")
    print(f"\n{dev['device_count']} x {dev['device_kind']} ({dev['backend']}), peak "
          f"{res['meta'].get('peak_tflops_per_device') or 'unknown'} TFLOP/s per device; written {out / name}")
    print(_table(res["results"]))


if __name__ == "__main__":
    main()

"""Training throughput of the runners' Transformer per model size (tokens/s), on this machine.

    python benchmarks/bench_runners.py [--threads N] [--sizes 16,32,64,128] [--steps 20]

Measures the full training step (forward, backward, AdamW update; FMT, i.e. all weights) at
seq 64, batch 32, after a compile/warm-up step; reports the median over `--steps` timed steps,
and the model FLOPs utilisation estimate 6 * N_params * tokens/s (+ attention) / peak when a peak
is given. Results go to benchmarks/results/bench_runners_<device>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=None, help="limit XLA to N cores (default: all)")
    ap.add_argument("--sizes", default="16,32,64,128,256")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--vocab", type=int, default=256)
    ap.add_argument("--peak-tflops", type=float, default=None, help="device peak (bf16 on GPU) for MFU")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from runners.sweep import init_worker
    init_worker(a.threads)
    import jax
    import numpy as np
    from flax import nnx
    from runners.model import ModelConfig, Transformer, param_count
    from runners.train import compute_dtype, optimizer, put_batch, split_model, train_step

    dev = jax.devices()[0]
    load0 = os.getloadavg()
    results = []
    for d in [int(x) for x in a.sizes.split(",")]:
        cfg = ModelConfig(a.vocab, d, a.layers, max(1, d // 16) if d >= 32 else 2)
        model = Transformer(cfg, rngs=nnx.Rngs(0), dtype=compute_dtype("auto"))
        g, params, rest = split_model(model, nnx.Param)
        tx = optimizer(1e-3)
        st = tx.init(params)
        rng = np.random.default_rng(0)
        toks = rng.integers(5, a.vocab, (a.batch, a.seq + 1)).astype(np.int32)
        mask = np.ones_like(toks, np.float32)
        batch = put_batch(toks, mask)
        t0 = time.perf_counter()
        params, st, loss = train_step(g, tx, params, rest, st, *batch)
        loss.block_until_ready()
        compile_s = time.perf_counter() - t0
        times = []
        for _ in range(a.steps):
            t0 = time.perf_counter()
            params, st, loss = train_step(g, tx, params, rest, st, *batch)
            loss.block_until_ready()
            times.append(time.perf_counter() - t0)
        med = float(np.median(times))
        tok_s = a.batch * (a.seq + 1) / med
        n = param_count(cfg)
        # 6N per token for the matmuls with parameters + attention scores/values (12 L T d per token)
        flops_tok = 6 * n + 12 * cfg.n_layers * (a.seq + 1) * d
        r = dict(d_model=d, n_layers=cfg.n_layers, n_heads=cfg.n_heads, params=n, tokens_per_s=round(tok_s),
                 median_step_s=med, compile_s=round(compile_s, 2), model_tflops=flops_tok * tok_s / 1e12)
        if a.peak_tflops:
            r["mfu"] = r["model_tflops"] / a.peak_tflops
        results.append(r)
        print(json.dumps(r), flush=True)
    meta = dict(device=str(dev), platform=dev.platform, machine=platform.processor() or platform.machine(),
                cpu_count=os.cpu_count(), threads=a.threads or "all", jax=jax.__version__,
                batch=a.batch, seq=a.seq + 1, vocab=a.vocab, steps=a.steps, dtype=str(compute_dtype("auto").dtype if hasattr(compute_dtype("auto"), "dtype") else compute_dtype("auto")),
                load_average_before=load0, load_average_after=os.getloadavg(),
                note="median over timed steps after one compile step; full FMT train step (fwd+bwd+AdamW)")
    out = Path(a.out) if a.out else Path(__file__).parent / "results" / f"bench_runners_{dev.platform}_{a.threads or 'all'}threads.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    print(out)


if __name__ == "__main__":
    main()

"""A tiny runners job for the device tests, run in a subprocess (device count and x64 set per process).

    python tests/runners_job.py [--x64 | --lawfit] [--pretrain DIR] [--finetune DIR ...]

Prints one JSON line: the devices, the pretraining curve, per finetuned base the test losses of
FMT / LoRA / prompt runs and a greedy decode, and the dtypes of every parameter, optimizer-state and
checkpoint leaf it saw.
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--x64", action="store_true", help="switch jax_enable_x64 on first")
    ap.add_argument("--lawfit", action="store_true", help="import lawfit first (as `lawfit run` does)")
    ap.add_argument("--pretrain", default=None)
    ap.add_argument("--finetune", action="append", default=[])
    ap.add_argument("--methods", default="fmt,lora,prompt")
    a = ap.parse_args()
    if a.lawfit:
        import lawfit  # noqa: F401
    import jax
    if a.x64:
        jax.config.update("jax_enable_x64", True)
    import numpy as np
    from flax import nnx

    from runners.device import probe
    from runners.evaluate import greedy_decode, mean_nll
    from runners.finetune import FinetuneConfig, build_model, finetune
    from runners.model import TRAINABLE, ModelConfig
    from runners.pretrain import PretrainConfig, load_base, pretrain
    from runners.tasks import SyntheticTask
    from runners.train import init_opt_state, optimizer

    task = SyntheticTask("translate")
    cfg = ModelConfig(vocab_size=task.vocab_size, d_model=16, n_layers=1, n_heads=2, name="t")
    pcfg = PretrainConfig(steps=8, batch_size=8, seq_len=16, warmup=2, checkpoints=(4, 8))
    out = {"x64": bool(jax.config.jax_enable_x64), "device": probe().to_dict(), "dtypes": set(), "runs": {}}
    if a.pretrain:
        out["curve"] = pretrain(task, cfg, pcfg, a.pretrain)["curve"]
    train, dev, test = task.split("train", 24), task.split("dev", 12), task.split("test", 10)
    for d in a.finetune:
        base = load_base(cfg, d, 8)
        out["dtypes"] |= {str(x.dtype) for x in jax.tree.leaves(base)}
        res = {}
        for method in a.methods.split(","):
            pet = {"fmt": None, "lora": 2, "prompt": 3}[method]
            model = build_model(cfg, base, method, pet, seed=0)
            fc = FinetuneConfig(steps=4, batch_size=8, eval_every=2, warmup=0)
            tx = optimizer(fc.lr_for(method))
            st = init_opt_state(tx, nnx.state(model, TRAINABLE[method]))
            out["dtypes"] |= {str(x.dtype) for x in jax.tree.leaves(st) if np.issubdtype(x.dtype, np.floating)}
            model, info = finetune(model, method, train, dev, fc, seed=0)
            out["dtypes"] |= {str(x.dtype) for x in jax.tree.leaves(nnx.state(model, nnx.Param))}
            res[method] = {"test_loss": mean_nll(model, test), "dev": info["dev_history"]}
        res["decoded"] = greedy_decode(model, test.subset(range(5)))
        out["runs"][d] = res
    out["dtypes"] = sorted(out["dtypes"])
    print(json.dumps(out))


if __name__ == "__main__":
    main()

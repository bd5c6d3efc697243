"""Helpers of the sweep tests (test_runners_sweep.py, test_runners_stop.py): a tiny sweep file, the
environment of the sweep subprocesses, and the command `python -m runners run` in a subprocess."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def sweep_toml(tmp: Path, ckpt: Path, *, name: str = "t", methods=("fmt", "prompt", "lora"), sizes=(8, 16),
               seeds=(0,), steps: int = 12, decode: int = 4, eval_batch: int | None = None, jobs: int = 1,
               extra: str = "") -> Path:
    """`tmp/<name>.toml`: one tiny model (pretrained 6 steps), a grid over `methods` x `sizes` x `seeds`,
    finetuning `steps` steps, output `tmp/<name>_out`, checkpoints in `ckpt` (shared by a module)."""
    p = tmp / f"{name}.toml"
    p.write_text(textwrap.dedent(f"""
        [sweep]
        name = "{name}"
        out = "{name}_out"
        checkpoint_dir = "{ckpt}"
        methods = {list(methods)!r}
        finetune_examples = {list(sizes)!r}
        seeds = {list(seeds)!r}
        prompt_lengths = [2]
        lora_ranks = [2]
        [models]
        configs = [{{d_model = 16, n_layers = 1, n_heads = 2}}]
        [pretrain]
        steps = 6
        batch_size = 4
        seq_len = 16
        [finetune]
        steps = {steps}
        batch_size = 4
        eval_every = {max(1, steps // 2)}
        dev_examples = 8
        [eval]
        test_examples = 8
        decode_examples = {decode}
        """) + (f"batch_size = {eval_batch}\n" if eval_batch is not None else "")
        + f"[local]\njobs = {jobs}\n" + extra)
    return p


def sweep_env(base: Path) -> tuple[Path, Path, dict]:
    """(base, shared checkpoint directory, environment) for one test module's sweep subprocesses:
    one XLA compilation cache, and no XLA backend optimisation (not worth its compile time for the
    tiny models here)."""
    e = dict(os.environ, JAX_COMPILATION_CACHE_DIR=str(base / "jax_cache"), PYTHONPATH=str(REPO),
             XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip())
    return base, base / "ckpt", e


def read_rows(out: Path):
    """A sweep's dataset directory as the fitter reads it (lawfit/io/runs.py), as a DataFrame."""
    from lawfit.io.runs import read_runs
    frame, source = read_runs(out)
    assert source.rows == len(frame)
    return frame


def run_sweep_cli(args, env: dict, **kw) -> subprocess.CompletedProcess:
    """`python -m runners run ARGS` in a subprocess, to completion (text output)."""
    return subprocess.run([sys.executable, "-m", "runners", "run", *map(str, args)], env=env, cwd=REPO,
                          capture_output=True, text=True, **kw)


def start_sweep(args, env: dict, cmd=("-m", "runners", "run")) -> subprocess.Popen:
    """`python CMD ARGS` started in its own session (text pipes), so a test can signal its group."""
    return subprocess.Popen([sys.executable, *cmd, *map(str, args)], env=env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)

"""Runners on accelerators, checked on CPU: float32 whatever the fitter's x64 switch, checkpoints
that move between device counts (simulated devices), one compilation per step configuration, and a
pretraining that resumes where it was interrupted."""
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

jax = pytest.importorskip("jax")
nnx = pytest.importorskip("flax.nnx")

from runners.finetune import FinetuneConfig, build_model, finetune  # noqa: E402
from runners.model import ModelConfig  # noqa: E402
from runners.pretrain import PretrainConfig, load_base, pretrain  # noqa: E402
from runners.tasks import SyntheticTask  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
JOB = Path(__file__).with_name("runners_job.py")


def _start(*args, devices=1):
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO),
               XLA_FLAGS=f"--xla_force_host_platform_device_count={devices} --xla_backend_optimization_level=0")
    return subprocess.Popen([sys.executable, str(JOB), *map(str, args)], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(p):
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.slow
def test_x64_process_trains_float32_and_checkpoints_move_between_device_counts(tmp_path):
    a, b, c = tmp_path / "two", tmp_path / "one_x64", tmp_path / "one"
    # stage 1: a fresh 2-device run through eval; the same 1-device job with lawfit imported and
    # jax_enable_x64 switched on for the process (as a user's float64 program would), and without
    p1 = _start("--pretrain", a, "--finetune", a, devices=2)
    p2 = _start("--lawfit", "--x64", "--pretrain", b, "--finetune", b)
    p3 = _start("--pretrain", c, "--finetune", c)
    two, x64, ref = _result(p1), _result(p2), _result(p3)
    assert two["device"]["device_count"] == 2 and x64["device"]["device_count"] == 1
    assert x64["x64"] and not ref["x64"]
    # float32 parameters, optimizer state and checkpoints, and exactly the same numbers
    assert x64["dtypes"] == ref["dtypes"] == two["dtypes"] == ["float32"]
    assert x64["curve"] == ref["curve"]
    assert x64["runs"][str(b)] == ref["runs"][str(c)]
    assert all(np.isfinite(r["test_loss"]) for r in two["runs"][str(a)].values() if isinstance(r, dict))
    # stage 2: the 2-device base finetunes on 1 device, the 1-device base on 2 devices
    p4 = _start("--finetune", a, "--methods", "fmt,prompt")
    p5 = _start("--finetune", c, "--methods", "fmt,lora", devices=2)
    one_from_two, two_from_one = _result(p4), _result(p5)
    for got, want in ((one_from_two["runs"][str(a)], two["runs"][str(a)]),
                      (two_from_one["runs"][str(c)], ref["runs"][str(c)])):
        for m in got:
            if m != "decoded":  # same base, same run: the same losses up to the reduction order
                np.testing.assert_allclose(got[m]["test_loss"], want[m]["test_loss"], rtol=1e-5)
    # the checkpoint itself is the same array whichever device count restores it
    with_one = load_base(ModelConfig(SyntheticTask().vocab_size, 16, 1, 2, name="t"), a, 8)
    assert {str(x.dtype) for x in jax.tree.leaves(with_one)} == {"float32"}


def _tiny():
    task = SyntheticTask("translate")
    return task, ModelConfig(vocab_size=task.vocab_size, d_model=16, n_layers=1, n_heads=2, name="t")


class CompileLog(logging.Handler):
    """Collects jax's "Compiling <name>" log lines (jax_log_compiles) for one function name."""

    def __init__(self, name):
        super().__init__()
        self.name, self.seen = name, []

    def emit(self, rec):
        msg = rec.getMessage()
        if msg.startswith(f"Compiling jit({self.name})"):
            self.seen.append(msg)

    def __enter__(self):
        jax.config.update("jax_log_compiles", True)
        logging.getLogger("jax").addHandler(self)
        return self

    def __exit__(self, *exc):
        logging.getLogger("jax").removeHandler(self)
        jax.config.update("jax_log_compiles", False)


@pytest.mark.slow
def test_train_step_compiles_once_per_configuration(tmp_path):
    task, cfg = _tiny()
    with CompileLog("_train_step") as pre:
        pretrain(task, cfg, PretrainConfig(steps=4, batch_size=4, seq_len=16, warmup=1), tmp_path)
    assert len(pre.seen) == 1, pre.seen
    base = load_base(cfg, tmp_path, 4)
    train, dev = task.split("train", 8), task.split("dev", 4)
    fc = FinetuneConfig(steps=4, batch_size=4, eval_every=2, warmup=1)
    with CompileLog("_train_step") as ft:  # loaded base (committed) + fresh adapters: one compile
        finetune(build_model(cfg, base, "lora", 2, seed=0), "lora", train, dev, fc, seed=0)
    assert len(ft.seen) == 1, ft.seen
    with CompileLog("_train_step") as again:  # the next run of this configuration: none
        finetune(build_model(cfg, base, "lora", 2, seed=1), "lora", train, dev, fc, seed=1)
    assert again.seen == []


class Interrupt(Exception):
    pass


@pytest.mark.slow
def test_interrupted_pretraining_resumes_to_the_same_result(tmp_path):
    task, cfg = _tiny()
    pcfg = PretrainConfig(steps=12, batch_size=4, seq_len=16, warmup=2, checkpoints=(6, 12))
    ref = pretrain(task, cfg, pcfg, tmp_path / "ref")

    def crash_at_9(msg):
        if "step 9/" in msg:
            raise Interrupt

    with pytest.raises(Interrupt):  # saves its training state every step, dies after step 9
        pretrain(task, cfg, pcfg, tmp_path / "run", log=crash_at_9, resume_every_s=0.0)
    assert not (tmp_path / "run" / "meta.json").exists()
    logs = []
    meta = pretrain(task, cfg, pcfg, tmp_path / "run", log=logs.append)
    assert meta["resumed_from_step"] == 8 and "resuming from step 8/12" in logs[0]
    assert [s for s, _ in meta["curve"]] == [s for s, _ in ref["curve"]]
    np.testing.assert_allclose([v for _, v in meta["curve"]], [v for _, v in ref["curve"]], rtol=1e-6)
    for step in (6, 12):
        a, b = load_base(cfg, tmp_path / "ref", step), load_base(cfg, tmp_path / "run", step)
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6, atol=1e-7)
    assert not (tmp_path / "run" / "resume").exists()  # the training state goes once complete


@pytest.mark.slow
def test_bench_runners_mfu_uses_every_devices_peak(monkeypatch):
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench_runners", REPO / "benchmarks" / "bench_runners.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.default_peak("NVIDIA H100 80GB HBM3") == 989.0
    assert bench.default_peak("NVIDIA H100 PCIe") == 756.0
    assert bench.default_peak("NVIDIA H200") == 989.0
    assert bench.default_peak("cpu") is None
    _, cfg = _tiny()
    monkeypatch.setattr(jax, "device_count", lambda: 4)  # as if the batch were sharded over 4 devices
    r = bench.measure(cfg, batch=4, seq=16, dtype="float32", steps=2, windows=2, peak=2.0)
    assert r["devices"] == 4 and len(r["window_step_s"]) == 2
    assert r["tokens_per_s"] == round(4 * 16 / r["median_step_s"])
    assert r["mfu"] == pytest.approx(r["model_tflops"] / (2.0 * 4))
    n = r["params"]
    assert r["model_tflops"] == pytest.approx((6 * n + 12 * cfg.n_layers * 16 * cfg.d_model) * r["tokens_per_s"] / 1e12,
                                              rel=1e-3)

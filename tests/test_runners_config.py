"""Sweep configuration: the whole file is validated (schema + device rules) before anything runs;
every bad value is refused by `--dry-run` and by `run` with exit 2 and one line naming the key.
Devices and dtypes are resolved for the plan (run ids hash the resolved dtype); workers get one GPU
each."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pydantic")

from runners.sweep import plan as plan_mod  # noqa: E402
from runners.sweep.local import worker_env  # noqa: E402
from runners.sweep.plan import SweepError, load_plan  # noqa: E402
from runners.sweep.slurm import RunBatch, pack  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

GOOD = """
[sweep]
name = "g"
methods = ["fmt", "lora"]
finetune_examples = [8]
lora_ranks = [2]
[models]
configs = [{d_model = 16, n_layers = 1, n_heads = 2}]
[pretrain]
steps = 6
batch_size = 4
seq_len = 16
[finetune]
steps = 4
batch_size = 4
[eval]
test_examples = 8
batch_size = 8
"""


def edit(text: str, table: str, line: str) -> str:
    """GOOD with `line` added to (or replacing the same key in) [table]."""
    key = line.split("=")[0].strip()
    out, cur = [], None
    for ln in text.strip().splitlines():
        if ln.startswith("["):
            cur = ln.strip("[]")
        elif cur == table and ln.split("=")[0].strip() == key:
            continue
        out.append(ln)
        if ln == f"[{table}]":
            out.append(line)
    if f"[{table}]" not in out:
        out += [f"[{table}]", line]
    return "\n".join(out) + "\n"


def main_in_process(args, capsys):
    """`python -m runners run ARGS` through the same entry point, in this process (fast)."""
    import argparse

    from runners.cli import configure_parser, main
    capsys.readouterr()
    rc = main(configure_parser(argparse.ArgumentParser()).parse_args([str(a) for a in args]))
    return rc, capsys.readouterr().err


def cli(args, env=None, timeout=120):
    e = dict(os.environ, PYTHONPATH=str(REPO), **(env or {}))
    return subprocess.run([sys.executable, "-m", "runners", "run", *map(str, args)], env=e, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


BAD = [  # (TOML, key / words the one-line message must name)
    ("", "empty"),
    ("# only a comment\n", "empty"),
    ("[local]\njobs = 2\n", "missing table [sweep]"),
    (edit(GOOD, "pretrain", 'steps = "twenty"'), "pretrain.steps"),
    (edit(GOOD, "finetune", 'batch_size = "four"'), "finetune.batch_size"),
    (edit(GOOD, "pretrain", "steps = -5"), "pretrain.steps"),
    (edit(GOOD, "finetune", "steps = 2.5"), "finetune.steps"),
    (edit(GOOD, "pretrain", "checkpoints = [3, 9]"), "pretrain.checkpoints"),
    (edit(GOOD, "pretrain", 'dtype = "float16"'), "pretrain.dtype"),
    (edit(GOOD, "finetune", 'dtype = "half"'), "finetune.dtype"),
    (edit(GOOD, "finetune", "stepz = 3"), "unknown key finetune.stepz"),
    (edit(GOOD, "sweeep", "x = 1"), "unknown table [sweeep]"),
    (edit(GOOD, "sweep", 'methods = ["fmt", "adapter"]'), "sweep.methods[1]"),
    (edit(GOOD, "sweep", "seeds = [0, true]"), "sweep.seeds[1]"),
    (edit(GOOD, "sweep", "train_pool = 4"), "sweep.train_pool"),
    (edit(GOOD, "finetune", "lr = { fmt = 1e-3, adapters = 1e-2 }"), "finetune.lr"),
    (edit(GOOD, "eval", "batch_size = 0"), "eval.batch_size"),
    (edit(GOOD, "local", "jobs = 0"), "local.jobs"),
    (edit(GOOD, "local", "memory_fraction = 1.5"), "local.memory_fraction"),
    (edit(GOOD, "slurm", 'timeout_min = "2h"'), "slurm.timeout_min"),
    (edit(GOOD, "models", "ladder = { n = 2 }"), "models.configs"),
    (GOOD.replace("n_heads = 2", "n_heads = 3"), "models"),
    (edit(GOOD, "sweep", 'device = "tpu"'), "sweep.device"),
    (edit(GOOD, "sweep", 'device = "gpu"'), "sweep.device"),  # no GPU on this machine
]


@pytest.mark.parametrize("text,key", BAD, ids=[f"{i}:{k}" for i, (_, k) in enumerate(BAD)])
def test_bad_configuration_is_refused_by_dry_run_with_the_key(tmp_path, capsys, text, key):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    rc, err = main_in_process([p, "--dry-run"], capsys)
    assert rc == 2, err
    assert key in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == [p]  # nothing created


@pytest.mark.slow
@pytest.mark.parametrize("text,key", [BAD[0], BAD[3], BAD[4], BAD[7], BAD[8], BAD[10], BAD[-1]],
                         ids=["empty", "steps", "batch_size", "checkpoints", "dtype", "unknown key", "gpu"])
def test_bad_configuration_is_refused_by_run_before_anything_runs(tmp_path, text, key):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    for args in ([p], [p, "--dry-run"]):
        r = cli(args)  # the command, in its own process
        assert r.returncode == 2 and key in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "Traceback" not in r.stderr
    assert list(tmp_path.iterdir()) == [p]  # no output directory, no checkpoints


TWO = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}


@pytest.mark.slow
def test_batches_must_divide_by_the_devices_a_run_uses(tmp_path, monkeypatch):
    p = tmp_path / "s.toml"
    cases = [("pretrain", "batch_size = 3"), ("finetune", "batch_size = 5"), ("eval", "batch_size = 63")]
    for table, line in cases:  # one device: fine
        p.write_text(edit(GOOD, table, line))
        load_plan(p)
    monkeypatch.setenv("XLA_FLAGS", TWO["XLA_FLAGS"])  # two (simulated) devices: refused before anything runs
    for table, line in cases:
        p.write_text(edit(GOOD, table, line))
        with pytest.raises(SweepError, match=rf"{table}.batch_size: \d+ is not divisible by the 2 CPU devices"):
            load_plan(p)
    p.write_text(GOOD)
    assert load_plan(p).devices.per_run == 2
    monkeypatch.delenv("XLA_FLAGS")
    p.write_text(edit(GOOD, "eval", "batch_size = 63"))  # the command: exit 2, one line
    r = cli([p, "--dry-run"], env=TWO)
    assert r.returncode == 2 and "eval.batch_size" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    p.write_text(GOOD)
    r = cli([p, "--dry-run"], env=TWO)
    assert r.returncode == 0 and "2 cpu device(s) per run" in r.stderr, r.stderr


@pytest.mark.slow
def test_device_flag_gpu_is_refused_on_a_cpu(tmp_path, capsys):
    p = tmp_path / "s.toml"
    p.write_text(GOOD)
    rc, err = main_in_process([p, "--dry-run", "--device", "gpu"], capsys)
    assert rc == 2 and "sweep.device" in err and "CPU" in err, err
    assert main_in_process([p, "--dry-run", "--device", "cpu"], capsys)[0] == 0


@pytest.mark.slow
def test_dtype_alias_is_normalised_and_the_resolved_dtype_is_hashed(tmp_path):
    ids = {}
    for dt in ("auto", "float32", "bf16", "bfloat16"):
        p = tmp_path / f"{dt}.toml"
        p.write_text(edit(edit(GOOD, "pretrain", f'dtype = "{dt}"'), "finetune", f'dtype = "{dt}"'))
        pl = load_plan(p)
        ids[dt] = ([r["run_id"] for r in pl.runs], [j["ckpt_dir"].rsplit("-", 1)[1] for j in pl.pretrain_jobs])
        assert {r["config"]["finetune"]["dtype"] for r in pl.runs} == {"bfloat16" if "bf" in dt else "float32"}
    assert ids["auto"] == ids["float32"]  # auto is float32 on this CPU: the same runs and checkpoints
    assert ids["bf16"] == ids["bfloat16"]
    assert not set(ids["auto"][0]) & set(ids["bfloat16"][0]) and ids["auto"][1] != ids["bfloat16"][1]


def fake_gpus(monkeypatch, n):
    def probe(env=None):
        if env and env.get("JAX_PLATFORMS") == "cpu":
            return {"backend": "cpu", "device_kind": "cpu", "device_count": 1}
        return {"backend": "gpu", "device_kind": "NVIDIA H100", "device_count": n}
    monkeypatch.setattr(plan_mod, "probe", probe)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_one_gpu_per_worker_on_a_multi_gpu_node(tmp_path, monkeypatch):
    fake_gpus(monkeypatch, 4)
    p = tmp_path / "s.toml"
    p.write_text(edit(GOOD, "local", "jobs = 4"))
    pl = load_plan(p)
    assert (pl.devices.backend, pl.devices.per_run) == ("gpu", 1)  # a tiny model is never sharded over 4 GPUs
    assert {r["config"]["finetune"]["dtype"] for r in pl.runs} == {"bfloat16"}  # auto on a GPU
    monkeypatch.setenv("JAX_ENABLE_X64", "1")
    envs = [worker_env(pl, s) for s in range(4)]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0", "1", "2", "3"]
    assert all(e["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.9" and "JAX_ENABLE_X64" not in e for e in envs)
    p.write_text(edit(edit(GOOD, "local", "jobs = 2"), "local", "gpus_per_job = 2"))
    pl = load_plan(p)
    assert pl.devices.per_run == 2 and [worker_env(pl, s)["CUDA_VISIBLE_DEVICES"] for s in (0, 1)] == ["0,1", "2,3"]
    p.write_text(edit(GOOD, "local", "jobs = 5"))
    with pytest.raises(SweepError, match="local.jobs"):
        load_plan(p)
    p.write_text(edit(edit(GOOD, "local", "gpus_per_job = 2"), "finetune", "batch_size = 3"))
    with pytest.raises(SweepError, match="finetune.batch_size"):
        load_plan(p)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")
    p.write_text(edit(GOOD, "local", "jobs = 2"))
    assert [worker_env(load_plan(p), s)["CUDA_VISIBLE_DEVICES"] for s in (0, 1)] == ["4", "5"]


def test_slurm_plan_comes_from_the_slurm_table(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text(edit(GOOD, "slurm", "gpus_per_node = 2"))
    pl = load_plan(p, executor="slurm")
    assert (pl.devices.backend, pl.devices.per_run) == ("gpu", 2)
    assert {r["config"]["finetune"]["dtype"] for r in pl.runs} == {"bfloat16"}
    p.write_text(edit(edit(GOOD, "slurm", "gpus_per_node = 0"), "sweep", 'device = "gpu"'))
    with pytest.raises(SweepError, match="gpus_per_node = 0"):
        load_plan(p, executor="slurm")


def test_submitit_callable_requeues_the_same_batch():
    batch = [{"kind": "finetune", "run_id": "x"}]
    delayed = RunBatch().checkpoint(batch)
    assert isinstance(delayed.function, RunBatch) and delayed.args == (batch,)


def test_runs_are_packed_per_checkpoint_and_method():
    def run(ck, m, i):
        return {"kind": "finetune", "ckpt_dir": ck, "run_id": f"{ck}{m}{i}",
                "config": {"pretrain_step": 1, "method": m, "pet_size": None}}
    jobs = [run(ck, m, i) for i in range(3) for m in ("fmt", "lora") for ck in ("a", "b")]
    batches = pack(jobs, 2)
    assert sorted(len(b) for b in batches) == [1, 1, 1, 1, 2, 2, 2, 2]
    assert all(len({(j["ckpt_dir"], j["config"]["method"]) for j in b}) == 1 for b in batches)
    assert sorted(j["run_id"] for b in batches for j in b) == sorted(j["run_id"] for j in jobs)


def test_rows_of_an_older_runner_version_are_not_mixed_with_new_ones(tmp_path, capsys):
    from runners import rows
    p = tmp_path / "s.toml"
    p.write_text(GOOD)
    out = load_plan(p).out
    row = {"task": "x", "method": "fmt", "model_params": 1, "pretrain_tokens": 1, "finetune_examples": 8,
           "pet_params": None, "seed": 0, "loss": 1.0, "run_id": "old1", "config": '{"runner_version": 1}'}
    rows.write_row(out, row)
    before = sorted(x.name for x in out.iterdir())
    rc, err = main_in_process([p, "--dry-run"], capsys)
    assert rc == 2 and "older runner version" in err and "--out" in err, err
    assert sorted(x.name for x in out.iterdir()) == before
    rows.write_row(out, {**row, "run_id": "new1", "config": '{"runner_version": 2}'})  # a foreign current row: fine
    (out / "old1.parquet").unlink()
    assert main_in_process([p, "--dry-run"], capsys)[0] == 0


class RecordingExecutor:
    """An executor that computes nothing: it records what the sweep driver hands it."""
    seen: list = []

    def __init__(self, plan, stop, *, name, threads_per_job=None):
        RecordingExecutor.seen.append(("init", name, plan.devices.backend))

    def run(self, jobs, progress, phase):
        RecordingExecutor.seen.append((phase, sorted(j["kind"] for j in jobs)))
        for j in jobs:
            progress(j, {"skipped": True})
        return []

    def close(self):
        RecordingExecutor.seen.append(("close",))


def test_an_executor_is_added_by_one_entry_in_the_table(tmp_path, monkeypatch, capsys):
    """One entry in runners.sweep.executor.EXECUTORS: the command accepts it, the plan resolves its
    devices, the driver hands it each phase and closes it."""
    from runners.sweep import executor
    entry = executor.ExecutorEntry(f"{__name__}:RecordingExecutor", "cpu", "records the jobs")
    monkeypatch.setitem(executor.EXECUTORS, "recording", entry)
    RecordingExecutor.seen.clear()
    p = tmp_path / "s.toml"
    p.write_text(GOOD)
    rc, err = main_in_process([p, "--executor", "recording"], capsys)
    assert rc == 0, err
    assert RecordingExecutor.seen == [("init", "recording", "cpu"), ("pretrain", ["pretrain"]),
                                      ("runs", ["finetune", "finetune"]), ("close",)]
    assert "[runs 2/2" in err and "already done" in err
    monkeypatch.delitem(executor.EXECUTORS, "recording")
    with pytest.raises(SystemExit):  # the command's choices come from the table
        main_in_process([p, "--executor", "recording"], capsys)

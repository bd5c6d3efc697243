"""Runners: sweeps end to end through the command line (local and submitit-local executors),
kill + resume, corrupt files, bad input."""
import os
import signal
import time
from pathlib import Path

import pytest

pytest.importorskip("flax")
pq = pytest.importorskip("pyarrow.parquet")

from sweep_helpers import read_rows, start_sweep, sweep_env, sweep_toml  # noqa: E402
from sweep_helpers import run_sweep_cli as cli  # noqa: E402

from lawfit.table import CANONICAL  # noqa: E402
from runners import rows  # noqa: E402
from runners.sweep import load_plan  # noqa: E402

CANON = list(CANONICAL)  # the runs-table contract the fitter reads (lawfit/table.py)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Shared pretraining checkpoints and XLA compilation cache across this module's sweeps."""
    return sweep_env(tmp_path_factory.mktemp("sweeps"))


def check_rows(out: Path, plan):
    df = read_rows(out)
    assert sorted(df.run_id) == sorted(r["run_id"] for r in plan.runs)  # exactly the grid, no duplicates
    assert list(df.columns[:len(CANON)]) == CANON
    assert set(df.method) == {r["config"]["method"] for r in plan.runs}
    assert df.loss.between(0.0, 10.0).all()
    assert df[df.method == "fmt"].pet_params.isna().all()
    assert (df[df.method != "fmt"].pet_params == 2).all()
    from runners.model import ModelConfig, param_count
    cfg = plan.runs[0]["config"]["model"]
    assert (df.model_params == param_count(ModelConfig(**cfg))).all()
    assert (df.pretrain_tokens == 6 * 4 * 16).all()
    for r in plan.runs:  # each row is its configuration
        row = df[df.run_id == r["run_id"]].iloc[0]
        assert row.finetune_examples == r["config"]["finetune_examples"]
        assert row.method == r["config"]["method"] and row.seed == r["config"]["seed"]
    assert {"wall_seconds", "config", "zero_shot_loss", "base_loss", "dev_loss"} <= set(df.columns)
    if plan.runs[0]["config"]["eval"]["decode_examples"]:
        assert df.chrf.between(0, 100).all() and df.bleu.between(0, 100).all()
    return df


@pytest.mark.slow
def test_local_sweep_killed_mid_run_then_resumed(tmp_path, env):
    base, ckpt, e = env
    toml = sweep_toml(tmp_path, ckpt, methods=("fmt", "lora"), sizes=(8, 16), seeds=(0,), steps=300, decode=0)
    plan = load_plan(toml)
    out = plan.out
    proc = start_sweep([toml], e)
    t0 = time.time()
    while not rows.run_files(out) and time.time() - t0 < 120 and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "sweep finished before it could be killed: " + proc.stderr.read()[-2000:]
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole session: driver and worker, mid-run
    proc.wait()
    first = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in rows.run_files(out)}
    assert 1 <= len(first) < len(plan.runs), f"kill was not mid-sweep: {len(first)} of {len(plan.runs)} rows"
    rows.finished_run_ids(out)  # every file present is complete and readable
    r = cli([toml], e, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"{len(first)} already done" in r.stderr
    df = check_rows(out, plan)
    assert len(df) == len(plan.runs)
    for name, (mtime, data) in first.items():  # finished rows were not redone
        assert (out / name).stat().st_mtime_ns == mtime and (out / name).read_bytes() == data
    assert not list(out.glob(".*.tmp")), "stale temp files of the killed writer were not cleaned"
    # a third run has nothing to do
    r = cli([toml], e, timeout=120)
    assert r.returncode == 0 and f"({len(plan.runs)} already done, 0 to run)" in r.stderr


@pytest.mark.slow
def test_submitit_local_executor_end_to_end(tmp_path, env):
    base, ckpt, e = env
    toml = sweep_toml(tmp_path, ckpt, sizes=(8,), steps=4, decode=2, name="s")
    r = cli([toml, "--executor", "submitit-local"], e, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    plan = load_plan(toml)
    df = check_rows(plan.out, plan)
    assert len(df) == 3
    assert list((plan.out / ".submitit").glob("*_result.pkl")), "runs did not go through submitit"
    assert "[runs 3/3" in r.stderr
    # the contract: the fitter reads the dataset directory as written, no conversion
    lawfit_data = pytest.importorskip("lawfit.io.runs")
    frame, src = lawfit_data.read_runs(plan.out)
    assert src.rows == 3 and set(CANON) <= set(frame.columns)


@pytest.mark.slow
def test_corrupt_or_partial_row_file_is_reported(tmp_path, env):
    base, ckpt, e = env
    toml = sweep_toml(tmp_path, ckpt, name="c")
    plan = load_plan(toml)
    plan.out.mkdir(parents=True)
    good = {"task": "x", "method": "fmt", "model_params": 1, "pretrain_tokens": 1, "finetune_examples": 1,
            "pet_params": None, "seed": 0, "loss": 1.0, "run_id": plan.runs[0]["run_id"]}
    rows.write_row(plan.out, good)
    full = (plan.out / f"{good['run_id']}.parquet").read_bytes()
    bad = plan.out / f"{plan.runs[1]['run_id']}.parquet"
    bad.write_bytes(full[: len(full) // 2])  # a truncated (partial) parquet file
    with pytest.raises(rows.CorruptRunFile, match=bad.name):  # what the sweep checks before it runs
        rows.finished_run_ids(plan.out)
    from lawfit.errors import DataError
    with pytest.raises(DataError, match=bad.name):  # the fitter refuses it too
        read_rows(plan.out)
    r = cli([toml], e, timeout=120)
    assert r.returncode == 2
    assert bad.name in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    # dot-files (temp files of writers) are ignored by readers
    bad.rename(plan.out / ".partial.tmp")
    assert len(read_rows(plan.out)) == 1


@pytest.mark.slow
def test_bad_input_exits_2_with_one_line(tmp_path, env):
    base, ckpt, e = env
    bad = tmp_path / "bad.toml"
    cases = {
        "[sweep\nname = 1": "invalid TOML",
        "[sweep]\nmethods = ['fmt', 'adapter']": "methods",
        "[sweep]\nfinetune_examples = [0, 10]": "finetune_examples",
        "[sweeep]\n": "unknown table",
        "[finetune]\nstepz = 3": "unknown key",
    }
    for text, msg in cases.items():
        bad.write_text(text)
        r = cli([bad, "--dry-run"], e, timeout=60)
        assert r.returncode == 2, (text, r.stderr)
        assert msg in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = cli([tmp_path / "missing.toml"], e, timeout=60)
    assert r.returncode == 2 and "not found" in r.stderr


def test_run_ids_are_config_hashes(tmp_path, env):
    base, ckpt, e = env
    a = load_plan(sweep_toml(tmp_path, ckpt, name="a"))
    b = load_plan(sweep_toml(tmp_path, ckpt, name="b"))  # same grid, other output dir
    assert [r["run_id"] for r in a.runs] == [r["run_id"] for r in b.runs]
    c = load_plan(sweep_toml(tmp_path, ckpt, name="c", steps=13))
    assert not {r["run_id"] for r in a.runs} & {r["run_id"] for r in c.runs}
    assert len(a.runs) == 1 * 2 * 1 * 3  # models x sizes x seeds x methods


def test_row_write_is_atomic_when_the_writer_dies(tmp_path, monkeypatch):
    row = {"task": "x", "method": "lora", "model_params": 10, "pretrain_tokens": 5, "finetune_examples": 3,
           "pet_params": 4, "seed": 0, "loss": 1.5, "run_id": "abc"}

    def dying_write(table, where, **kw):
        where.write(b"PAR1" + b"\0" * 100)  # some bytes of the file, then the process "dies"
        raise KeyboardInterrupt

    monkeypatch.setattr(rows.pq, "write_table", dying_write)
    with pytest.raises(KeyboardInterrupt):
        rows.write_row(tmp_path, row)
    assert not (tmp_path / "abc.parquet").exists() and rows.run_files(tmp_path) == []
    assert list(tmp_path.glob(".abc*.tmp")) == []      # an interrupted writer cleans up after itself
    monkeypatch.undo()
    rows.write_row(tmp_path, row)
    df = read_rows(tmp_path)
    assert len(df) == 1 and df.pet_params.iloc[0] == 4
    schema = pq.read_schema(tmp_path / "abc.parquet")
    assert schema.field("model_params").type == "int64" and schema.field("pet_params").type == "int64"



def test_rows_follow_the_fitters_column_contract(tmp_path):
    """A row's canonical columns come first, in lawfit's order and types, whatever order the writer used."""
    row = {"extra": "x", "loss": 2.5, "run_id": "r1", "seed": 3, "method": "lora", "task": "t", "pet_params": 4,
           "finetune_examples": 8, "pretrain_tokens": 96, "model_params": 1000}
    rows.write_row(tmp_path, row)
    schema = pq.read_schema(tmp_path / "r1.parquet")
    assert schema.names == [*CANONICAL, "extra"]
    assert [str(schema.field(c).type) for c in CANONICAL] == [
        "string", "string", "int64", "int64", "int64", "int64", "int64", "double", "string"]
    frame = read_rows(tmp_path)
    assert len(frame) == 1 and frame.loc[0, "loss"] == 2.5 and frame.loc[0, "pet_params"] == 4

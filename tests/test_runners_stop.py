"""Runners at process level: a sweep stops promptly on SIGINT / SIGTERM (no partial rows, resume
completes without duplicates), a second signal kills the workers, two sweeps on one directory
compute each run once, `lawfit run` trains exactly like `python -m runners run` (float32), a failing
run leaves a readable log."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("flax")
pytest.importorskip("pydantic")

from sweep_helpers import REPO, read_rows, run_sweep_cli, start_sweep, sweep_env, sweep_toml  # noqa: E402

from runners import rows  # noqa: E402
from runners.sweep import claims, load_plan  # noqa: E402


def toml(tmp: Path, ckpt: Path, *, name="t", sizes=(8, 16, 24), steps=150, methods=("fmt",), jobs=1):
    return sweep_toml(tmp, ckpt, name=name, sizes=sizes, steps=steps, methods=methods, jobs=jobs, decode=0,
                      eval_batch=8)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return sweep_env(tmp_path_factory.mktemp("stop"))


def group_gone(pgid: int, within: float) -> bool:
    t0 = time.time()
    while time.time() - t0 < within:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def wait_for_rows(out: Path, proc, n=1, limit=240):
    t0 = time.time()
    while len(rows.run_files(out)) < n and time.time() - t0 < limit and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "sweep ended before the signal: " + proc.communicate()[1][-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_promptly_without_partial_rows_and_resume_completes(tmp_path, env, sig):
    base, ckpt, e = env
    t = toml(tmp_path, ckpt)
    plan = load_plan(t)
    proc = start_sweep([t], e)
    wait_for_rows(plan.out, proc)
    t0 = time.time()
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)  # Ctrl-C in a terminal reaches the whole foreground group
    else:
        proc.send_signal(sig)     # `kill PID` / a scheduler signalling the driver
    _, err = proc.communicate(timeout=60)
    took = time.time() - t0
    assert proc.returncode == 128 + sig, err[-3000:]
    assert took < 15, f"took {took:.1f}s to stop"
    assert group_gone(proc.pid, 5), "worker processes outlived the sweep"
    assert f"stopped by {signal.Signals(sig).name}" in err and "left" in err and "Traceback" not in err
    done = rows.finished_run_ids(plan.out)  # every row file present is complete
    assert 1 <= len(done) < len(plan.runs), (len(done), err[-2000:])
    assert f"{len(done)} of {len(plan.runs)} runs done" in err
    assert not list(plan.out.glob(".*.claim")), "claims of abandoned runs were not released"
    before = {p.name: p.stat().st_mtime_ns for p in rows.run_files(plan.out)}
    r = run_sweep_cli([t], e, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"({len(done)} already done, {len(plan.runs) - len(done)} to run)" in r.stderr
    assert r.stderr.count("loss=") == len(plan.runs) - len(done)  # only the missing runs were computed
    assert sorted(read_rows(plan.out).run_id) == sorted(x["run_id"] for x in plan.runs)
    assert all((plan.out / n).stat().st_mtime_ns == m for n, m in before.items())


@pytest.mark.slow
def test_second_signal_kills_workers_at_once(tmp_path, env):
    base, ckpt, e = env
    t = toml(tmp_path, ckpt, name="k", steps=400)
    plan = load_plan(t)
    proc = start_sweep([t], e)
    wait_for_rows(plan.out, proc)
    children = [int(x) for x in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
    assert children, "no worker process"
    for pid in children:  # workers that do not react to the first signal (e.g. stuck in a long XLA call)
        os.kill(pid, signal.SIGSTOP)
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(1.5)
    assert proc.poll() is None  # waiting for the abandoned workers (grace period)
    t0 = time.time()
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err[-3000:]
    assert time.time() - t0 < 4, "the second signal did not kill the workers at once"
    assert group_gone(proc.pid, 3), "workers survived the second signal"
    rows.finished_run_ids(plan.out)
    assert not list(plan.out.glob(".*.claim"))


@pytest.mark.slow
def test_workers_do_not_outlive_a_killed_driver(tmp_path, env):
    """SIGKILL of the driver alone (an OOM killer, a scheduler's hard kill): its workers go too."""
    _, ckpt, e = env
    t = toml(tmp_path, ckpt, name="o", steps=50000)  # a run far longer than this test waits
    plan = load_plan(t)
    proc = start_sweep([t], e)
    t0 = time.time()
    while not list(plan.out.glob(".*.claim")) and time.time() - t0 < 240 and proc.poll() is None:
        time.sleep(0.05)  # a run has been handed to a worker
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    time.sleep(1.0)
    proc.kill()
    proc.communicate(timeout=30)
    assert group_gone(proc.pid, 10), "workers outlived their driver"
    assert rows.run_files(plan.out) == []  # the abandoned run left no row


@pytest.mark.slow
def test_two_sweeps_on_one_directory_compute_each_run_once(tmp_path, env):
    base, ckpt, e = env
    t = toml(tmp_path, ckpt, name="c", sizes=(8, 12, 16, 20, 24, 28), steps=40)
    plan = load_plan(t)
    a, b = start_sweep([t], e), start_sweep([t], e)
    ea, eb = a.communicate(timeout=600)[1], b.communicate(timeout=600)[1]
    assert a.returncode == 0 and b.returncode == 0, (ea[-2000:], eb[-2000:])
    computed = ea.count("loss=") + eb.count("loss=")
    assert computed == len(plan.runs), f"{computed} computations for {len(plan.runs)} runs:\n{ea}\n{eb}"
    assert sorted(read_rows(plan.out).run_id) == sorted(r["run_id"] for r in plan.runs)
    assert not list(plan.out.glob(".*.claim"))


@pytest.mark.slow
def test_lawfit_run_trains_like_python_m_runners(tmp_path, env):
    """`lawfit` switches on float64 for the fitter; its sweep workers must still train in float32."""
    base, ckpt, e = env
    ta = toml(tmp_path, tmp_path / "ck_a", name="a", sizes=(8,), steps=40)
    tb = toml(tmp_path, tmp_path / "ck_b", name="b", sizes=(8,), steps=40)
    # python -m runners run, checking that the driver never imported jax
    code = ("import sys, argparse; from runners.cli import configure_parser, main; "
            "a = configure_parser(argparse.ArgumentParser()).parse_args(sys.argv[1:]); rc = main(a); "
            "print('JAX_IN_DRIVER', 'jax' in sys.modules, file=sys.stderr); sys.exit(rc)")
    ra = subprocess.run([sys.executable, "-c", code, str(ta)], env=e, cwd=REPO, capture_output=True, text=True,
                        timeout=600)
    assert ra.returncode == 0, ra.stderr[-3000:]
    assert "JAX_IN_DRIVER False" in ra.stderr
    # lawfit run (the fitter's float64 switch on in the driver), checking it never started a jax backend
    code = ("import sys; from lawfit.cli.main import main; rc = main(['run', sys.argv[1]]); "
            "from jax._src import xla_bridge; print('BACKEND_IN_DRIVER', xla_bridge.backends_are_initialized(), "
            "file=sys.stderr); sys.exit(rc)")
    rb = subprocess.run([sys.executable, "-c", code, str(tb)], env=e, cwd=REPO, capture_output=True, text=True,
                        timeout=600)
    assert rb.returncode == 0, rb.stderr[-3000:]
    assert "BACKEND_IN_DRIVER False" in rb.stderr
    da, db = read_rows(load_plan(ta).out), read_rows(load_plan(tb).out)
    assert sorted(da.run_id) == sorted(db.run_id)  # same configurations, same ids
    da, db = da.set_index("run_id").sort_index(), db.set_index("run_id").sort_index()
    for col in ("loss", "base_loss", "dev_loss", "zero_shot_loss"):
        assert (da[col] == db[col]).all(), (col, da[col].tolist(), db[col].tolist())
    assert set(db.dtype) == {"float32"} and set(db.backend) == {"cpu"} and set(db.device_count) == {1}
    assert db.device_kind.notna().all()


@pytest.mark.slow
def test_failing_run_leaves_a_readable_log(tmp_path, env):
    base, ckpt, e = env
    t = toml(tmp_path, tmp_path / "ck", name="f", sizes=(8,), steps=4)
    plan = load_plan(t)
    cdir = Path(plan.pretrain_jobs[0]["ckpt_dir"])
    cdir.mkdir(parents=True)
    (cdir / "meta.json").write_text("{}")  # "complete" but holds no checkpoint: every run fails
    r = run_sweep_cli([t], e, timeout=300)
    assert r.returncode == 1, r.stderr[-3000:]
    rid = plan.runs[0]["run_id"]
    logf = plan.out / f"_{rid}.log"
    assert str(logf) in r.stderr
    text = logf.read_text()
    assert f"start finetune {rid}" in text and "failed" in text and "Traceback" in text
    assert "no checkpoint at step 6" in text
    assert rows.run_files(plan.out) == [] and not list(plan.out.glob(".*.claim"))


def test_claims(tmp_path):
    assert claims.claim(tmp_path, "r1")
    assert not claims.claim(tmp_path, "r1")  # held (by this live process)
    claims.release(tmp_path, "r1")
    assert claims.claim(tmp_path, "r1")
    # a claim of a dead process on this host is stale and is taken over
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    p = claims.claim_path(tmp_path, "r2")
    p.write_text(f'{{"host": "{claims.HOST}", "pid": {int(dead.stdout)}, "time": 0}}')
    assert claims.claim(tmp_path, "r2") and claims.holder(p)["pid"] == os.getpid()
    # another host's claim is respected
    p = claims.claim_path(tmp_path, "r3")
    p.write_text('{"host": "elsewhere", "pid": 1, "time": 0}')
    assert not claims.claim(tmp_path, "r3")
    assert set(claims.claimed_by_others(tmp_path)) == {"r3"}
    claims.release(tmp_path, "r3")  # not ours: left alone
    assert p.exists()


@pytest.mark.slow
def test_fresh_two_device_sweep_records_its_devices(tmp_path, env):
    """Simulated 2-device host: the plan is made for 2 devices per run, the workers see them, rows say so."""
    _, _, e = env
    t = toml(tmp_path, tmp_path / "ck2", name="d2", sizes=(8,), steps=4, methods=("fmt", "lora"))
    e2 = dict(e, XLA_FLAGS=e["XLA_FLAGS"] + " --xla_force_host_platform_device_count=2")
    r = run_sweep_cli([t], e2, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "2 cpu device(s) per run" in r.stderr
    df = read_rows(load_plan(t).out)
    assert len(df) == 2 and set(df.device_count) == {2} and set(df.backend) == {"cpu"}
    assert set(df.dtype) == {"float32"}

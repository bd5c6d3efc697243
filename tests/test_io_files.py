"""lawfit.io.files: the one atomic write (lawfit and runners/), and the clean-up of temporary
files that killed writers leave behind."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from lawfit.io.files import atomic_write, remove_stale_temp


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "fit.json"
    target.write_text("old")

    def failing(tmp):
        tmp.write_text("half of the new")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, failing)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit.json"]


@pytest.mark.parametrize("durable", [False, True])
def test_the_new_file_replaces_the_old_with_the_users_mode(tmp_path, durable):
    target = tmp_path / "table.csv"
    target.write_text("old")
    old = os.umask(0o027)
    try:
        atomic_write(target, lambda tmp: tmp.write_text("new"), durable=durable)
    finally:
        os.umask(old)
    assert target.read_text() == "new"
    assert target.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]


def test_a_killed_writer_leaves_only_a_dot_file_that_is_cleaned_up(tmp_path):
    """A writer killed mid-write (SIGKILL: no clean-up runs) leaves the final name untouched and a
    temporary dot-file, which remove_stale_temp deletes once its process is gone."""
    code = textwrap.dedent(f"""
        import time
        from lawfit.io.files import atomic_write
        def slow(tmp):
            tmp.write_text("partial")
            print("WRITING", flush=True)
            time.sleep(60)
        atomic_write({str(tmp_path / "run.parquet")!r}, slow)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "WRITING"
        live = [p.name for p in tmp_path.iterdir()]
        assert remove_stale_temp(tmp_path) == 0          # its writer is alive: kept
        assert [p.name for p in tmp_path.iterdir()] == live
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    left = [p.name for p in tmp_path.iterdir()]
    assert not (tmp_path / "run.parquet").exists()
    assert len(left) == 1 and left[0].startswith(".run.parquet__") and left[0].endswith(".tmp")
    for _ in range(50):               # the pid is gone once waited for
        if remove_stale_temp(tmp_path) == 1:
            break
        time.sleep(0.1)
    assert list(tmp_path.iterdir()) == []

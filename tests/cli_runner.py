"""Run many `lawfit` command lines as separate processes, cheaply.

``python tests/cli_runner.py CASES.json RESULTS.json``: CASES is a list of
``{"argv": [...], "cwd": DIR}``. This process imports the command once and then, for every case,
forks a child that runs it exactly as ``python -m lawfit.cli ARGV`` would (fresh stdout/stderr
file descriptors, an uncaught exception printed as a traceback with exit status 1), so each case
is a real process with its own exit status and stderr, without paying the imports each time.
A case running longer than ``LAWFIT_CASE_TIMEOUT`` seconds (default 120) is killed (status -9).
"""
from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time


def run_case(argv, cwd) -> dict:
    from lawfit.cli import main
    out = tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    pid = os.fork()
    if pid == 0:       # child
        code = 1
        try:
            os.chdir(cwd)
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            try:
                code = main(argv)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                if exc.code is not None and not isinstance(exc.code, int):
                    print(exc.code, file=sys.stderr)
            except BaseException:
                import traceback
                traceback.print_exc()
                code = 1
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code if isinstance(code, int) else 1)
    limit = float(os.environ.get("LAWFIT_CASE_TIMEOUT", "120"))
    t0 = time.monotonic()
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() - t0 > limit:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            status = -9
            break
        time.sleep(0.02)
    rc = os.waitstatus_to_exitcode(status) if status != -9 else -9
    out.seek(0)
    err.seek(0)
    return {"rc": rc, "stdout": out.read().decode(errors="replace"),
            "stderr": err.read().decode(errors="replace"), "seconds": time.monotonic() - t0}


def main() -> None:
    import jax  # noqa: F401  (imported, not initialised: the children start their own backends)
    import lawfit.cli
    lawfit.cli.build_parser()          # import the subcommand plugins once, before forking
    cases = json.loads(open(sys.argv[1]).read())
    results = [run_case(c["argv"], c["cwd"]) for c in cases]
    with open(sys.argv[2], "w") as fh:
        json.dump(results, fh)


if __name__ == "__main__":
    main()

"""Run many `lawfit` command lines as separate processes, cheaply.

``python tests/cli_runner.py CASES.json RESULTS.json``: CASES is a list of
``{"argv": [...], "cwd": DIR, "watch": DIR or null}``. This process imports the command once and then, for every case,
forks a child that runs it exactly as ``python -m lawfit ARGV`` would (fresh stdout/stderr
file descriptors, an uncaught exception printed as a traceback with exit status 1), so each case
is a real process with its own exit status and stderr, without paying the imports each time.
A case running longer than ``LAWFIT_CASE_TIMEOUT`` seconds (default 120) is killed (status -9).
With ``watch``, the result lists every file or directory under it that the case created, removed
or changed (content hashes and permissions before and after).
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import tempfile
import time


def tree_state(root) -> dict:
    """path -> (kind, mode, sha256 of the content) for everything under ``root``."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            digest = ""
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as fh:
                    digest = hashlib.sha256(fh.read()).hexdigest()
            state[os.path.relpath(p, root)] = (name in dirnames, st.st_mode, digest)
    return state


def run_case(argv, cwd, watch=None) -> dict:
    before = tree_state(watch) if watch else None
    result = _run(argv, cwd)
    if watch:
        after = tree_state(watch)
        result["changed"] = sorted(p for p in set(before) | set(after)
                                   if before.get(p) != after.get(p))
    return result


def _run(argv, cwd) -> dict:
    from lawfit.cli.main import main
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
    import warnings
    warnings.filterwarnings("ignore", message=".*use of fork.. may lead to deadlocks",
                            category=DeprecationWarning)
    import jax  # noqa: F401  (imported, not initialised: the children start their own backends)

    import lawfit.cli.main
    lawfit.cli.main.build_parser()          # import the command modules once, before forking
    from jax._src import xla_bridge

    import lawfit.analysis.backtest  # noqa: F401  (the heavy imports of every subcommand, once)
    import lawfit.analysis.critical  # noqa: F401
    import lawfit.bayes  # noqa: F401
    import lawfit.plot  # noqa: F401
    assert not xla_bridge._backends, "a jax backend started before forking"
    cases = json.loads(open(sys.argv[1]).read())
    results = [run_case(c["argv"], c["cwd"], c.get("watch")) for c in cases]
    with open(sys.argv[2], "w") as fh:
        json.dump(results, fh)


if __name__ == "__main__":
    main()

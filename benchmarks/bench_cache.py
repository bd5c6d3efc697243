"""Does the persistent compilation cache cover what a typical command compiles?

Each command runs twice in fresh processes sharing one fresh cache directory (``LAWFIT_CACHE_DIR``):
cold (empty cache), then warm. In each process jax's monitoring events count the programs compiled
by XLA (and their compile seconds), the persistent-cache hits and misses. A command the cache covers
compiles nothing worth caching in its warm run: its warm compile seconds are what is left (programs
below jax's 0.2 s caching threshold are compiled again each run, by design).

    nice .venv/bin/python benchmarks/bench_cache.py [--quick] [--out benchmarks/results]

Writes bench_cache.json (per command: wall seconds, programs compiled, compile seconds, cache hits
and misses, cold and warm) and prints a table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "zhang2024_simulated.csv"

COMMANDS = {
    "fit": ["fit", str(DATA), "--recipe", "zhang2024", "--bootstrap", "200"],
    "critical": ["critical", str(DATA), "--between", "fmt,lora", "--recipe", "zhang2024",
                 "--where", "task == 'wmt14_en_de'", "--bootstrap", "200"],
    "backtest": ["backtest", str(DATA), "--laws", "multiplicative,additive",
                 "--where", "factor == 'model_params' and task == 'wmt14_en_de'", "--bootstrap", "50"],
    "compare": ["compare", str(DATA), "--laws", "multiplicative,additive",
                "--where", "factor == 'model_params' and task == 'wmt14_en_de'",
                "--warmup", "200", "--draws", "200"],
}

# runs in the child: count jax's compile and cache events around one lawfit command
CHILD = r"""
import json, sys, time
from collections import Counter
import jax.monitoring as m
count, secs = Counter(), Counter()
m.register_event_listener(lambda name, **kw: count.update([name]))
def duration(name, s, **kw):
    count.update([name]); secs[name] += s
m.register_event_duration_secs_listener(duration)
from lawfit.cli.main import main
t0 = time.perf_counter()
rc = main(sys.argv[2:])
wall = time.perf_counter() - t0
B = "/jax/core/compile/backend_compile_duration"
C = "/jax/compilation_cache/"
json.dump({"rc": rc, "wall": wall, "compiled": count[B], "compile_seconds": secs[B],
           "cache_hits": count[C + "cache_hits"], "cache_misses": count[C + "cache_misses"],
           "saved_seconds": secs[C + "compile_time_saved_sec"]}, open(sys.argv[1], "w"))
"""


def once(argv: list[str], cache: str, out: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        res = Path(tmp) / "r.json"
        env = {**os.environ, "LAWFIT_CACHE_DIR": cache}
        env.pop("JAX_COMPILATION_CACHE_DIR", None)
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-c", CHILD, str(res), *argv, "--quiet", "--out", out],
                           env=env, cwd=ROOT, capture_output=True, text=True)
        process = time.perf_counter() - t0
        if p.returncode != 0 or not res.exists():
            sys.exit(f"{' '.join(argv)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
        return {**json.loads(res.read_text()), "process_seconds": process}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fit and critical only")
    ap.add_argument("--reps", type=int, default=1, help="warm runs per command (median)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    names = ["fit", "critical"] if args.quick else list(COMMANDS)
    doc = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                       "python": platform.python_version(), "load_average_start": os.getloadavg()},
           "commands": {}}
    for name in names:
        with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as out:
            cold = once(COMMANDS[name], cache, out + "/cold")
            warm = [once(COMMANDS[name], cache, out + f"/warm{i}") for i in range(args.reps)]
        w = warm[len(warm) // 2] if len(warm) % 2 else min(warm, key=lambda r: r["process_seconds"])
        doc["commands"][name] = {"argv": ["lawfit", *COMMANDS[name]], "cold": cold, "warm": w,
                                 "warm_process_seconds_median": statistics.median(
                                     r["process_seconds"] for r in warm)}
        print(f"{name:9s} cold {cold['process_seconds']:6.1f} s ({cold['compiled']} programs, "
              f"{cold['compile_seconds']:.1f} s compiling) | warm {w['process_seconds']:6.1f} s "
              f"({w['compiled']} compiled, {w['compile_seconds']:.2f} s; {w['cache_hits']} cache hits, "
              f"{w['cache_misses']} misses)", flush=True)
    doc["machine"]["load_average_end"] = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_cache.json").write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()

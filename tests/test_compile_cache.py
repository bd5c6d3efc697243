"""The persistent compilation cache covers every program a command compiles: a second run of the
same command compiles nothing itself (each program is read back from the cache)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys
from collections import Counter
import jax.monitoring as m
count = Counter()
m.register_event_listener(lambda name, **kw: count.update([name]))
m.register_event_duration_secs_listener(lambda name, s, **kw: count.update([name]))
from lawfit.cli.main import main
rc = main(sys.argv[2:])
json.dump({"rc": rc, "compiled": count["/jax/core/compile/backend_compile_duration"],
           "hits": count["/jax/compilation_cache/cache_hits"]}, open(sys.argv[1], "w"))
"""


@pytest.mark.slow
def test_second_run_of_a_fit_reads_every_program_from_the_cache(tmp_path):
    env = {**os.environ, "LAWFIT_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    runs = []
    for i in range(2):
        out = tmp_path / f"r{i}.json"
        p = subprocess.run([sys.executable, "-c", CHILD, str(out), "fit",
                            str(ROOT / "data" / "zhang2024_simulated.csv"),
                            "--where", "task == 'wmt14_en_de' and factor == 'model_params'",
                            "--bootstrap", "10", "--quiet", "--out", str(tmp_path / f"fit{i}")],
                           env=env, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stderr[-2000:]
        runs.append(json.loads(out.read_text()))
    cold, warm = runs
    assert cold["compiled"] > 0 and cold["hits"] == 0
    assert warm["compiled"] == cold["compiled"]           # the same programs ...
    assert warm["hits"] == warm["compiled"]               # ... every one read from the cache

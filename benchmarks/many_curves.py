"""Peak RSS and throughput of lawfit.batch.solve_many over many curves, in chunks (issue 13, row (d) at
scale): N curves of 20 runs (4 model x 5 data sizes), multiplicative law, Huber(1e-3), the default
grid screened, batched Newton on the best 16 starts per curve. One line per chunk (curves, seconds,
peak RSS), then a RESULT line. Runs on whatever backend jax picks (a GPU where there is one).

    python benchmarks/many_curves.py 100000 5000          # N curves, chunk size

Results: benchmarks/results/many_curves.md. `bench_lsq.py` row (d) runs this script.
"""
from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
from bench_lsq import DS, XS  # noqa: E402

from lawfit import batch, lsq  # noqa: E402
from lawfit.laws import get_law  # noqa: E402
from lawfit.objectives import make_objective  # noqa: E402


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    n, chunk = int(sys.argv[1]), int(sys.argv[2])
    print("backend", jax.default_backend(), jax.devices(), flush=True)
    law, obj = get_law("multiplicative"), make_objective("huber", 1e-3)
    grid = law.grid()
    lv = np.log(np.array([(x, d) for x in XS for d in DS]))
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    fitted = converged = 0
    solving = 0.0
    for lo in range(0, n, chunk):
        probs = []
        for _ in range(lo, min(n, lo + chunk)):
            A, E = np.exp(rng.uniform(np.log(50), np.log(2000))), rng.uniform(0.5, 2)
            a, b = rng.uniform(0.1, 0.5), rng.uniform(0.02, 0.15)
            y = A * np.exp(-a * lv[:, 0] - b * lv[:, 1]) + E + rng.normal(0, 0.005, len(lv))
            probs.append(lsq.Problem.simple(law, obj, lv, y))
        t1 = time.perf_counter()
        fits = batch.solve_many(probs, [grid] * len(probs))
        solving += time.perf_counter() - t1
        fitted += len(fits)
        converged += sum(bool(f.converged) for f in fits)
        print(f"{fitted} curves {time.perf_counter() - t0:.1f} s (solve {solving:.1f} s) rss "
              f"{peak_rss_mib():.0f} MiB", flush=True)
    print("RESULT", n, chunk, f"{time.perf_counter() - t0:.1f}", f"{solving:.1f}",
          f"{peak_rss_mib():.0f}", converged, flush=True)


if __name__ == "__main__":
    main()

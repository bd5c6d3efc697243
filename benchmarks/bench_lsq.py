"""Least-squares speed against scipy references measured in the same run (issue 13's rows).

(a) the full Hoffmann grid (4,500 starts) of the Chinchilla law, summed Huber(1e-3) on log loss, on
    the 240 runs of data/epoch2024_chinchilla.csv that Epoch AI's fits keep (245 rows, 5 marked
    ``epoch_excluded``), compiled, against scipy L-BFGS-B one start at a time with a numpy objective
    and its analytic gradient (timed on --k starts spread over the grid, scaled to 4,500);
(b) the same fit as a whole ``lawfit fit`` process with a warm compilation cache (and the solver's
    traced programs, lawfit/programs.py), same reference;
(c) many finetuning curves x 20 runs (4 model sizes x 5 data sizes: the multiplicative law plus
    N(0, 0.005^2) noise, drawn in one vectorised step), multiplicative law, default objective
    (Huber 1e-3) and grid (1,296 starts): lawfit.batch.solve_many over all curves (what
    ``lawfit.fit(..., by="curve")`` runs), a sample one by one (lsq.multistart), and with
    --fit-call the whole fit() call; against scipy L-BFGS-B from 20 grid starts per curve with the
    analytic gradient of an overflow-safe objective (timed on a sample of curves, median per
    curve); plus the share of curves whose objective is no worse than scipy's (1e-9 relative);
(d) peak RSS of a child process fitting many curves (lawfit.batch.solve_many, in chunks), and of
    one fitting a tenth as many: memory stays bounded;
(e) ``lawfit.fit(frame, by=["curve"], bootstrap=100)`` on --boot-curves curves of (c)'s table: the
    groups and their bootstrap resamples batched (lawfit.batch.solve_many, bootstrap_many) against
    ``batch=False`` (each group's fit and resamples one by one), seconds per curve, median of 2
    after a warm-up call; plus how far the two calls' draws are apart (the batched fit's
    candidate optima, the refits' starts, can differ from the one-by-one fit's).

(k) the solver's kernels on (c)'s curves: one Newton row-step of ``lawfit.lsq._solver`` (4 x 2,048
    rows of the multiplicative law, 16 steps) with the step's eigendecomposition by
    ``lsq.symmetric_eigh`` (Jacobi rotations) against ``jnp.linalg.eigh`` (LAPACK, once per row on
    CPU), and the eigendecomposition of 8,192 such 4 x 4 matrices alone, both ways; medians of 7.

Also: numpy / jax exp throughput on this machine, and the achieved fraction of the exponential
limit for (a) (the time the grid's exponentials alone take at that throughput over the measured
time). Medians of --reps; the machine's load average is printed: on a shared machine the absolute
times are noisy, the ratios (reference measured in the same run) less so.

    python benchmarks/bench_lsq.py [--quick] [--out benchmarks/results/bench_lsq.json]
"""
from __future__ import annotations

import argparse
import collections
import json
import os

# one BLAS thread: scipy's L-BFGS-B calls OpenBLAS for tiny vectors every iteration, and on a shared
# machine OpenBLAS's worker threads spin for a core (measured: 54 ms for a 27-evaluation fit with
# the default threads, 3 ms with one). Set before numpy is imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

ROOT = Path(__file__).resolve().parents[1]
DELTA = 1e-3
XS = (1e8, 4e8, 1.6e9, 6.4e9)
DS = (1e3, 3e3, 1e4, 3e4, 1e5)


def machine() -> dict:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import jax
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "jax": jax.__version__, "load_average_start": os.getloadavg()}


def exp_throughput(n=10_000_000, reps=5) -> dict:
    """Exponentials per second, float64, numpy and jax (jit) on one array of n."""
    import jax
    import jax.numpy as jnp
    x = np.random.default_rng(0).uniform(-5, 5, n)
    t_np = []
    for _ in range(reps):
        t0 = time.perf_counter()
        np.exp(x)
        t_np.append(time.perf_counter() - t0)
    xj = jnp.asarray(x)
    f = jax.jit(jnp.exp)
    f(xj).block_until_ready()
    t_jax = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f(xj).block_until_ready()
        t_jax.append(time.perf_counter() - t0)
    return {"numpy_per_s": n / statistics.median(t_np), "jax_per_s": n / statistics.median(t_jax)}


# --- (a), (b): the Hoffmann grid on Epoch AI's 240 runs ------------------------------------------

def chinchilla_table():
    import pandas as pd
    df = pd.read_csv(ROOT / "data" / "epoch2024_chinchilla.csv")
    rows = len(df)
    df = df[~df["epoch_excluded"].astype(bool)]
    return rows, df["model_params"].to_numpy(float), df["pretrain_tokens"].to_numpy(float), \
        df["loss"].to_numpy(float)


def chinchilla_objective(theta, lN, lD, lL):
    """Summed Huber on log loss through log-sum-exp, and its analytic gradient (numpy)."""
    a, b, e, alpha, beta = theta
    z = np.stack([a - alpha * lN, b - beta * lD, np.full_like(lN, e)])
    m = z.max(axis=0)
    s = np.exp(z - m)
    lse = m + np.log(s.sum(axis=0))
    r = lse - lL
    ar = np.abs(r)
    f = np.where(ar <= DELTA, 0.5 * r * r, DELTA * (ar - 0.5 * DELTA)).sum()
    psi = np.clip(r, -DELTA, DELTA)
    p = s / s.sum(axis=0)
    g = np.array([(psi * p[0]).sum(), (psi * p[1]).sum(), (psi * p[2]).sum(),
                  -(psi * p[0] * lN).sum(), -(psi * p[1] * lD).sum()])
    return f, g


def scipy_starts(fun, starts, args):
    """scipy L-BFGS-B one start at a time (analytic gradient): (seconds, best value, best x)."""
    best, nfev = (np.inf, None), 0
    t0, c0 = time.perf_counter(), time.process_time()
    for s in starts:
        r = minimize(fun, s, args=args, jac=True, method="L-BFGS-B")
        nfev += r.nfev
        if r.fun < best[0]:
            best = (r.fun, r.x)
    scipy_starts.last = {"cpu_seconds": time.process_time() - c0, "evaluations": nfev}
    return time.perf_counter() - t0, best[0], best[1]


def row_a(args, exp_rate) -> dict:
    from lawfit import lsq
    from lawfit.laws import get_law
    from lawfit.objectives import make_objective
    rows, N, D, L = chinchilla_table()
    lN, lD, lL = np.log(N), np.log(D), np.log(L)
    law = get_law("chinchilla")
    grid = law.grid()
    prob = lsq.Problem.simple(law, make_objective("huber-log", DELTA), np.c_[lN, lD], L)
    idx = np.linspace(0, len(grid) - 1, args.k).round().astype(int)
    ref_s, ref_f, ref_x = scipy_starts(chinchilla_objective, grid[idx], (lN, lD, lL))
    polish = minimize(chinchilla_objective, ref_x, args=(lN, lD, lL), jac=True,
                      method="L-BFGS-B", options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10000})
    ref_grid_s = ref_s / args.k * len(grid)
    times, phases = [], []
    ref_cpu = scipy_starts.last
    cpu = []
    for _ in range(args.reps + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        ms = lsq.multistart(prob, grid)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    times = times[1:]                     # the first includes compilation
    t0 = time.perf_counter()
    screen = lsq.multistart(prob, grid, max_steps=0)      # screening only (refinement: 0 steps)
    phases.append(time.perf_counter() - t0)
    lawfit_s = statistics.median(times)
    # exponentials the solver evaluates: (1 + steps) evaluations of every row, 3 terms per run
    k = max(32, int(np.ceil(0.02 * len(grid))))
    screen_steps = screen.steps
    refine_steps = ms.steps - screen_steps
    n_exp = (len(grid) * (1 + screen_steps) + k * (1 + refine_steps)) * len(L) * 3
    return {"table": f"data/epoch2024_chinchilla.csv: {rows} rows, {len(L)} kept (not "
                     "epoch_excluded)", "runs": len(L), "starts": len(grid),
            "objective": "huber-log delta=1e-3, sum",
            "reference": {"what": "scipy L-BFGS-B one start at a time, numpy objective + analytic "
                                  f"gradient; {args.k} starts spread over the grid, scaled",
                          "seconds_per_start": ref_s / args.k, "grid_seconds": ref_grid_s,
                          "best_objective_polished": float(min(ref_f, polish.fun)),
                          "cpu_seconds_per_start": ref_cpu["cpu_seconds"] / args.k,
                          "evaluations_per_start": ref_cpu["evaluations"] / args.k},
            "lawfit": {"grid_seconds_median": lawfit_s, "screening_seconds": phases[0],
                       "grid_cpu_seconds_median": statistics.median(cpu[1:]),
                       "objective": ms.value, "converged": ms.converged,
                       "steps": ms.steps, "screen_steps": screen_steps},
            "relative_objective_difference": (ms.value - min(ref_f, polish.fun))
            / min(ref_f, polish.fun),
            "speedup": ref_grid_s / lawfit_s,
            "speedup_cpu_time": ref_cpu["cpu_seconds"] / args.k * len(grid)
            / statistics.median(cpu[1:]),
            "exp_limit": {"exponentials": n_exp, "seconds_at_jax_rate": n_exp / exp_rate,
                          "fraction_of_limit": n_exp / exp_rate / lawfit_s,
                          "one_grid_evaluation_seconds": len(grid) * len(L) * 3 / exp_rate}}


def row_b(args, ref_grid_s) -> dict:
    entry = "import sys; from lawfit.cli.main import main; sys.exit(main())"
    cmd = [sys.executable, "-c", entry, "fit", str(ROOT / "data" / "epoch2024_chinchilla.csv"), "--law",
           "chinchilla", "--where", "not epoch_excluded", "--quiet"]
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, LAWFIT_CACHE_DIR=cache)
        env.pop("JAX_COMPILATION_CACHE_DIR", None)
        times = []
        for _ in range(args.reps + 1):
            t0 = time.perf_counter()
            subprocess.run(cmd, env=env, check=True, capture_output=True, cwd=ROOT)
            times.append(time.perf_counter() - t0)
        import shutil
        shutil.rmtree(cache + "-programs", ignore_errors=True)   # lawfit/programs.py's, beside
    warm = statistics.median(times[1:])          # the first run fills the cache
    return {"command": "lawfit " + " ".join(cmd[3:]), "cold_cache_seconds": times[0],
            "warm_cache_seconds_median": warm, "speedup": ref_grid_s / warm}


# --- (c): many finetuning curves -----------------------------------------------------------------

def curves_table(n_curves: int, seed: int = 0):
    """n curves of 20 runs (4 model sizes x 5 data sizes), one seed: the multiplicative law plus
    N(0, 0.005^2) noise on the loss (lawfit.simulate's model, drawn here in one vectorised step:
    simulate() one curve at a time took 0.7 s per curve); parameters drawn in Zhang et al. 2024's
    Table 4 ranges."""
    import pandas as pd
    rng = np.random.default_rng(seed)
    A = np.exp(rng.uniform(np.log(50), np.log(2000), n_curves))
    E = rng.uniform(0.5, 2.0, n_curves)
    alpha = rng.uniform(0.1, 0.5, n_curves)
    beta = rng.uniform(0.02, 0.15, n_curves)
    x = np.repeat(XS, len(DS))
    d = np.tile(DS, len(XS))
    loss = (A[:, None] * x[None] ** -alpha[:, None] * d[None] ** -beta[:, None] + E[:, None]
            + rng.normal(0.0, 0.005, (n_curves, len(x))))
    frame = pd.DataFrame({"curve": np.repeat(np.arange(n_curves), len(x)),
                          "model_params": np.tile(x, n_curves),
                          "finetune_examples": np.tile(d, n_curves), "loss": loss.reshape(-1)})
    truth = [{"A": a, "E": e, "alpha": al, "beta": b} for a, e, al, b in zip(A, E, alpha, beta)]
    return frame, truth


ZMAX = 50.0     # exponents clipped here in the reference objective (e^50: far above any loss)


def huber_loss_space(theta, lx, ld, y):
    """Multiplicative law A X^-alpha D^-beta + E (internal parameters a = log A, e = log E,
    alpha, beta), summed Huber(1e-3) in loss space, and its analytic gradient (numpy).

    Overflow-safe: the prediction is exp(logsumexp(z1, e)) with the exponents clipped at ZMAX (a
    start or line-search trial with a huge scale gets a huge but finite loss and a gradient that
    points back), so L-BFGS never sees inf or nan."""
    a, e, alpha, beta = theta
    z1 = np.minimum(a - alpha * lx - beta * ld, ZMAX)
    e = min(e, ZMAX)
    pred = np.exp(z1) + np.exp(e)
    r = pred - y
    ar = np.abs(r)
    f = np.where(ar <= DELTA, 0.5 * r * r, DELTA * (ar - 0.5 * DELTA)).sum()
    psi = np.clip(r, -DELTA, DELTA)
    u1 = psi * np.exp(z1) * (a - alpha * lx - beta * ld <= ZMAX)
    u2 = psi * np.exp(e) * (theta[1] <= ZMAX)
    g = np.array([u1.sum(), u2.sum(), -(u1 * lx).sum(), -(u1 * ld).sum()])
    return f, g


def reference_curve(grid, lx, ld, y, rng, n_starts=20):
    """The reference fit of one curve: scipy L-BFGS-B from ``n_starts`` points drawn from the
    law's grid (every one a sensible start: the objective is overflow-safe there and along the
    way), best objective kept; timed. Returns (seconds, best objective, evaluations).

    (Starting from the 20 grid points of lowest objective instead was measured slower: 1,510
    evaluations per curve against 800, L-BFGS-B crawling along the Huber objective's kinks.)"""
    starts = grid[rng.choice(len(grid), n_starts, replace=False)]
    t0 = time.perf_counter()
    best, nfev = np.inf, 0
    for s in starts:
        r = minimize(huber_loss_space, s, args=(lx, ld, y), jac=True, method="L-BFGS-B")
        nfev += r.nfev
        best = min(best, float(r.fun))
    return time.perf_counter() - t0, best, nfev


def curve_problems(frame, n_curves):
    from lawfit import lsq
    from lawfit.laws import get_law
    from lawfit.objectives import make_objective
    law, obj = get_law("multiplicative"), make_objective("huber", DELTA)
    lv = np.log(frame[["model_params", "finetune_examples"]].to_numpy()).reshape(n_curves, 20, 2)
    y = frame["loss"].to_numpy().reshape(n_curves, 20)
    return [lsq.Problem.simple(law, obj, lv[c], y[c]) for c in range(n_curves)]


def row_c(args) -> dict:
    from lawfit import batch, lsq
    from lawfit.laws import get_law
    grid = get_law("multiplicative").grid()
    t0 = time.perf_counter()
    frame, _ = curves_table(args.curves)
    sim_s = time.perf_counter() - t0
    lx = np.log(frame["model_params"].to_numpy()).reshape(args.curves, 20)
    ld = np.log(frame["finetune_examples"].to_numpy()).reshape(args.curves, 20)
    y = frame["loss"].to_numpy().reshape(args.curves, 20)
    # the reference on curves spread over the table, one at a time
    rng = np.random.default_rng(1)
    sub = np.unique(np.linspace(0, args.curves - 1, min(args.ref_curves, args.curves)).round()
                    .astype(int))
    ref = {int(c): reference_curve(grid, lx[c], ld[c], y[c], rng) for c in sub}
    ref_per_curve = statistics.median(r[0] for r in ref.values())
    print(f"(c) reference: {ref_per_curve * 1e3:.1f} ms per curve (median of {len(sub)})",
          flush=True)
    probs = curve_problems(frame, args.curves)
    # lawfit's solver, every curve batched (lawfit.batch.solve_many); a first call on all curves
    # compiles every program the second, timed, call runs (the chunk shapes and the multi-start
    # fallback's shapes depend on the curves); compilation = first call - second call
    t0 = time.perf_counter()
    batch.solve_many(probs, [grid] * len(probs))
    first_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    fits = batch.solve_many(probs, [grid] * len(probs))
    per_curve = (time.perf_counter() - t0) / len(probs)
    compile_s = first_s - per_curve * len(probs)
    print(f"(c) lawfit.batch.solve_many: {per_curve * 1e3:.2f} ms per curve", flush=True)
    # one by one (lsq.multistart, what fit(batch=False) runs per group) on a sample
    few = sub[: args.one_by_one]
    lsq.multistart(probs[0], grid)
    t_one, one = [], {}
    for c in few:
        t0 = time.perf_counter()
        one[int(c)] = lsq.multistart(probs[c], grid)
        t_one.append(time.perf_counter() - t0)
    one_by_one = statistics.median(t_one)
    tol = lambda f: f * (1 + 1e-9) + 1e-15       # noqa: E731
    no_worse = [fits[c].value <= tol(ref[c][1]) for c in ref]
    no_worse_one = [fits[c].value <= tol(one[c].value) for c in one]
    out = {"curves": args.curves, "runs_per_curve": 20, "starts_per_curve": len(grid),
           "simulation_seconds": sim_s,
           "reference": {"what": "scipy L-BFGS-B from 20 points drawn from the law's grid per "
                                 "curve, numpy objective (log-sum-exp form, exponents clipped "
                                 "at 50) + analytic gradient, one BLAS thread; "
                                 f"{len(sub)} curves timed one at a time",
                         "seconds_per_curve_median": ref_per_curve,
                         "seconds_per_curve_mean": float(np.mean([r[0] for r in ref.values()])),
                         "evaluations_per_curve_median": float(np.median([r[2] for r in
                                                                          ref.values()]))},
           "batched": {"what": "lawfit.batch.solve_many, all curves in one call (projection "
                               "screening, Newton on the best 4 starts per curve; for curves none of "
                               "which converged, the boundary stage, then if needed the full "
                               "multi-start)",
                       "seconds_per_curve": per_curve, "compile_seconds": compile_s,
                       "converged": int(sum(f.converged for f in fits)),
                       "fallback": {str(k): v for k, v in collections.Counter(
                           f.info["batch"].get("fallback", "none") for f in fits).items()},
                       "screening": fits[0].info.get("batch")},
           "one_by_one": {"what": f"lawfit.lsq.multistart per curve, {len(few)} curves, median",
                          "seconds_per_curve": one_by_one,
                          "batched_no_worse_share": float(np.mean(no_worse_one))},
           "speedup": ref_per_curve / per_curve,
           "speedup_one_by_one": ref_per_curve / one_by_one,
           "share_no_worse_than_reference": float(np.mean(no_worse)),
           "curves_compared": len(no_worse),
           "curves_worse": [int(c) for c, ok in zip(ref, no_worse) if not ok]}
    if args.fit_call:
        out.update(fit_call(frame, args.curves, args.fit_reps))
        out["speedup_fit_call"] = ref_per_curve / out["lawfit_fit_seconds_per_curve"]
    return out


def fit_call(frame, n_curves: int, reps: int) -> dict:
    """The whole ``lawfit.fit(frame, "multiplicative", by=["curve"])`` call, after a first call on
    the same table (it compiles every program the call runs): median seconds per curve over
    ``reps`` calls, split into the solver (``lawfit.batch.solve_many``, timed inside the call by
    wrapping it) and the rest (splitting the table, building the problems, statuses, describing
    each group's fit, the result)."""
    import lawfit
    from lawfit import batch
    lawfit.fit(frame, "multiplicative", by=["curve"])          # compiles
    solve_many, inside = batch.solve_many, []

    def timed(*a, **k):
        t = time.perf_counter()
        try:
            return solve_many(*a, **k)
        finally:
            inside.append(time.perf_counter() - t)

    total = []
    batch.solve_many = timed
    try:
        for _ in range(reps):
            t0 = time.perf_counter()
            res = lawfit.fit(frame, "multiplicative", by=["curve"])
            total.append(time.perf_counter() - t0)
    finally:
        batch.solve_many = solve_many
    solver = [sum(inside[i::reps]) for i in range(reps)] if len(inside) == reps else [
        sum(inside) / reps] * reps
    statuses: dict = {}
    for g in res.groups:
        statuses[str(g.status)] = statuses.get(str(g.status), 0) + 1
    return {"lawfit_fit_seconds_per_curve": statistics.median(total) / n_curves,
            "lawfit_fit_solver_seconds_per_curve": statistics.median(solver) / n_curves,
            "lawfit_fit_rest_seconds_per_curve":
                statistics.median(t - s for t, s in zip(total, solver)) / n_curves,
            "lawfit_fit_what": f"median of {reps} calls after a first call on the same table; "
                               "solver: lawfit.batch.solve_many inside the call, rest: the call "
                               "minus the solver",
            "lawfit_fit_statuses": statuses}


# --- (k): the solver's kernels --------------------------------------------------------------------

def row_k(args) -> dict:
    """Microseconds per Newton row-step and per 4 x 4 eigendecomposition, Jacobi against LAPACK."""
    import jax
    import jax.numpy as jnp

    from lawfit import lsq
    from lawfit.numerics import float64
    n = 2048
    frame, truth = curves_table(n)
    probs = curve_problems(frame, n)

    def median_time(f, reps=7):
        jax.block_until_ready(f())
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            jax.block_until_ready(f())
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts)

    @float64
    def measure(eigh):
        saved = lsq.symmetric_eigh
        lsq.symmetric_eigh = eigh
        lsq._solver.cache_clear()
        try:
            fns = lsq.objective_fns(probs[0])
            data, w = lsq.stacked_solver_arrays(probs)
            rep = np.repeat(np.arange(n), 4)
            rng = np.random.default_rng(0)
            truth_int = np.array([[np.log(t["A"]), np.log(t["E"]), t["alpha"], t["beta"]]
                                  for t in truth])
            theta0 = truth_int[rep][:, None, :] + rng.normal(0.3, 0.2, (4 * n, 1, 4))
            args_ = [jax.device_put(np.asarray(a)) for a in
                     (theta0, w[rep], np.stack([p.lower_bounds() for p in probs])[rep])]
            data_r = jax.tree_util.tree_map(lambda a: jax.device_put(np.asarray(a)[rep]), data)
            start, advance = lsq._solver(fns, True)
            state = start(args_[0], args_[1], data_r, args_[2])
            step_s = median_time(lambda: advance(state, args_[1], data_r, args_[2],
                                                 np.asarray(16)))
            h = np.asarray(state[3]).reshape(-1, 4, 4)          # the rows' Hessians at the start
            d = np.sqrt(np.abs(np.einsum("nii->ni", h))) + 1e-300
            hs = jax.device_put(h / d[:, :, None] / d[:, None, :])
            batched = jax.jit(jax.vmap(eigh))
            eig_s = median_time(lambda: batched(hs))
            return {"row_step_us": step_s / (16 * 4 * n) * 1e6,
                    "eigendecomposition_us": eig_s / len(h) * 1e6}
        finally:
            lsq.symmetric_eigh = saved
            lsq._solver.cache_clear()

    jacobi = measure(lsq.symmetric_eigh)
    lapack = measure(jnp.linalg.eigh)
    return {"rows": 4 * n, "parameters": 4, "jacobi": jacobi, "lapack": lapack,
            "row_step_speedup": lapack["row_step_us"] / jacobi["row_step_us"]}


# --- (d): memory ---------------------------------------------------------------------------------

def row_d(args) -> dict:
    """Peak RSS of a child process fitting curves as in (c) in chunks: benchmarks/many_curves.py."""
    out = {}
    for n in (max(1, args.rss_curves // 10), args.rss_curves):
        lines = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "many_curves.py"), str(n),
                                str(args.rss_chunk)], capture_output=True, text=True, check=True,
                               cwd=ROOT).stdout.splitlines()
        _, _, _, seconds, _, rss_mib, converged = next(x for x in lines if x.startswith("RESULT")).split()
        out[str(n)] = {"seconds": float(seconds), "peak_rss_mib": float(rss_mib), "fitted": n,
                       "converged": int(converged)}
    out["chunk"] = args.rss_chunk
    return out


# --- (e): many curves' bootstrap resamples ---------------------------------------------------------

def row_e(args) -> dict:
    import lawfit
    frame, _ = curves_table(args.boot_curves, seed=2)
    n = args.boot_curves
    kw = {"by": ["curve"], "bootstrap": args.boot, "seed": 0}
    out = {"curves": n, "runs_per_curve": 20, "resamples": args.boot}
    fits = {}
    for name, batched in (("batched", True), ("one_by_one", False)):
        lawfit.fit(frame, "multiplicative", batch=batched, **kw)      # warm-up: compiles
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            fits[name] = lawfit.fit(frame, "multiplicative", batch=batched, **kw)
            times.append(time.perf_counter() - t0)
        out[name] = {"seconds_per_curve": statistics.median(times) / n, "seconds": times,
                     "bootstrap_batched": fits[name].settings["bootstrap_batched"]}
        print(f"(e) {name}: {statistics.median(times) / n * 1e3:.1f} ms per curve "
              f"({', '.join(f'{t:.1f}' for t in times)} s)", flush=True)
    diffs, same_ok = [], 0
    for a, b in zip(fits["batched"].groups, fits["one_by_one"].groups):
        same_ok += int(a.info["bootstrap"] == b.info["bootstrap"])
        # in internal units (log scales); draws whose scale overflows float64 (inf) are skipped
        da, db = (np.asarray(g.law.to_internal(g.draws), float) for g in (a, b))
        both = np.isfinite(da) & np.isfinite(db)
        if da.shape == db.shape and both.any():
            diffs.append(float(np.max(np.abs(da - db)[both] / (np.abs(db)[both] + 1e-12))))
    out["speedup"] = out["one_by_one"]["seconds_per_curve"] / out["batched"]["seconds_per_curve"]
    out["groups_with_same_bootstrap_health"] = same_ok
    out["max_relative_draw_difference"] = max(diffs) if diffs else None
    out["median_relative_draw_difference"] = float(np.median(diffs)) if diffs else None
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (a few minutes)")
    full = {"k": 150, "reps": 3, "curves": 2000, "ref_curves": 100, "one_by_one": 20, "fit_reps": 2,
            "rss_curves": 20000, "rss_chunk": 2000, "boot_curves": 200}
    quick = {"k": 30, "reps": 1, "curves": 200, "ref_curves": 20, "one_by_one": 5, "fit_reps": 1,
             "rss_curves": 1000, "rss_chunk": 500, "boot_curves": 40}
    ap.add_argument("--k", type=int, help="(a) reference starts timed (150; quick 30)")
    ap.add_argument("--reps", type=int, help="repetitions of (a) and (b) (3; quick 1)")
    ap.add_argument("--curves", type=int, help="(c) curves (2000; quick 200)")
    ap.add_argument("--ref-curves", type=int, help="(c) reference curves timed (100; quick 20)")
    ap.add_argument("--fit-call", action="store_true",
                    help="(c) also time one lawfit.fit(..., by='curve') call")
    ap.add_argument("--fit-reps", type=int, help="(c) timed fit() calls, --fit-call (2; quick 1)")
    ap.add_argument("--one-by-one", type=int, help="(c) curves fitted one by one (20; quick 5)")
    ap.add_argument("--rss-curves", type=int, help="(d) curves in the big run (20000; quick 1000)")
    ap.add_argument("--rss-chunk", type=int, help="(d) curves per call (2000; quick 500)")
    ap.add_argument("--boot-curves", type=int, help="(e) curves (200; quick 40)")
    ap.add_argument("--boot", type=int, default=100, help="(e) bootstrap resamples per curve")
    ap.add_argument("--rows", default="abcdek", help="which rows to run, e.g. 'ac'")
    ap.add_argument("--out", default="benchmarks/results/bench_lsq.json")
    args = ap.parse_args(argv)
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)

    import lawfit  # noqa: F401  (float64)
    res = {"machine": machine(), "quick": args.quick}
    res["exp_throughput"] = exp_throughput()
    print(f"machine: {res['machine']}", flush=True)
    print(f"exp throughput: numpy {res['exp_throughput']['numpy_per_s'] / 1e6:.0f} M/s, jax "
          f"{res['exp_throughput']['jax_per_s'] / 1e6:.0f} M/s", flush=True)
    ref_grid_s = None
    if "a" in args.rows or "b" in args.rows:
        a = row_a(args, res["exp_throughput"]["jax_per_s"])
        res["a_hoffmann_grid"] = a
        ref_grid_s = a["reference"]["grid_seconds"]
        print(f"(a) {a['table']}; reference {ref_grid_s:.1f} s for {a['starts']} starts "
              f"({a['reference']['seconds_per_start'] * 1e3:.1f} ms per start), lawfit "
              f"{a['lawfit']['grid_seconds_median']:.2f} s compiled = {a['speedup']:.1f}x "
              f"({a['speedup_cpu_time']:.1f}x in CPU time; scipy "
              f"{a['reference']['evaluations_per_start']:.0f} evaluations per start); "
              f"objective difference {a['relative_objective_difference']:.1e} relative; "
              f"exp limit {a['exp_limit']['seconds_at_jax_rate']:.3f} s = "
              f"{100 * a['exp_limit']['fraction_of_limit']:.1f}% achieved", flush=True)
    if "b" in args.rows:
        b = row_b(args, ref_grid_s)
        res["b_fit_process"] = b
        print(f"(b) {b['command']}: {b['warm_cache_seconds_median']:.2f} s with a warm "
              f"cache ({b['cold_cache_seconds']:.1f} s cold) = {b['speedup']:.1f}x", flush=True)
    if "c" in args.rows:
        c = row_c(args)
        res["c_curves"] = c
        print(f"(c) {c['curves']} curves x 20 runs: reference "
              f"{c['reference']['seconds_per_curve_median'] * 1e3:.1f} ms per curve, lawfit "
              f"batched {c['batched']['seconds_per_curve'] * 1e3:.2f} ms per curve = "
              f"{c['speedup']:.1f}x (one by one {c['one_by_one']['seconds_per_curve'] * 1e3:.1f} "
              f"ms = {c['speedup_one_by_one']:.2f}x); {c['batched']['converged']} converged; "
              f"objective no worse than scipy's in {100 * c['share_no_worse_than_reference']:.1f}"
              f"% of {c['curves_compared']} curves"
              + (f"; lawfit.fit {c['lawfit_fit_seconds_per_curve'] * 1e3:.1f} ms per curve ("
                 f"solver {c['lawfit_fit_solver_seconds_per_curve'] * 1e3:.1f} ms, the rest "
                 f"{c['lawfit_fit_rest_seconds_per_curve'] * 1e3:.2f} ms)"
                 if "lawfit_fit_seconds_per_curve" in c else ""), flush=True)
    if "k" in args.rows:
        k = row_k(args)
        res["k_kernels"] = k
        print(f"(k) {k['rows']} rows x {k['parameters']} parameters: Newton row-step "
              f"{k['jacobi']['row_step_us']:.2f} us with Jacobi, {k['lapack']['row_step_us']:.2f} "
              f"us with LAPACK ({k['row_step_speedup']:.2f}x); eigendecomposition alone "
              f"{k['jacobi']['eigendecomposition_us']:.2f} vs "
              f"{k['lapack']['eigendecomposition_us']:.2f} us per matrix", flush=True)
    if "d" in args.rows:
        d = row_d(args)
        res["d_memory"] = d
        print("(d) peak RSS: " + ", ".join(f"{k} curves {v['peak_rss_mib']:.0f} MiB in "
                                           f"{v['seconds']:.0f} s" for k, v in d.items()
                                           if k != "chunk") + f" (chunks of {d['chunk']})",
              flush=True)
    if "e" in args.rows:
        e = row_e(args)
        res["e_bootstrap"] = e
        print(f"(e) {e['curves']} curves x 20 runs, bootstrap {e['resamples']}: lawfit.fit "
              f"batched {e['batched']['seconds_per_curve'] * 1e3:.1f} ms per curve, batch=False "
              f"{e['one_by_one']['seconds_per_curve'] * 1e3:.1f} ms = {e['speedup']:.1f}x; "
              f"bootstrap health equal in {e['groups_with_same_bootstrap_health']}/{e['curves']} "
              f"groups, draws apart by at most {e['max_relative_draw_difference']:.1e} relative "
              f"(median {e['median_relative_draw_difference']:.1e})", flush=True)
    res["machine"]["load_average_end"] = os.getloadavg()
    res["machine"]["peak_rss_mib_this_process"] = \
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"load average at start {res['machine']['load_average_start']}, end "
          f"{res['machine']['load_average_end']} ({os.cpu_count()} cores)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2, default=float) + "\n")


if __name__ == "__main__":
    main()

"""``lawfit compare``: rank laws per group by PSIS-LOO, with a held-out error beside it.

Every law is fitted with the Bayesian fitter to the same runs of every group; the expected log
predictive density (elpd, PSIS-LOO, on the loss scale in nats: fits whose likelihood lives in log
loss carry the Jacobian) ranks them, arviz's stacking gives weights, and Pareto k values above
arviz's threshold are reported (those runs' LOO estimates are unreliable). Beside it, a simple
held-out check: each law refitted without the runs at the largest D (the law's ``d`` column, or
its only variable) of every group, and the mean absolute error of its predictions there
(Delta_h of Zhang et al. 2024).
"""
from __future__ import annotations

import sys

from lawfit.cli.common import (
    Reporter,
    add_command,
    add_data_arguments,
    check_target_accept,
    csv_list,
    fit_options,
    load,
)
from lawfit.errors import DataError


def _compare_add(p):
    add_data_arguments(p)
    p.add_argument("--laws", default="multiplicative,additive",
                   help="laws to compare, comma separated (default multiplicative,additive)")
    p.add_argument("--priors", default=None, help="TOML file of priors (applies to every law)")
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--warmup", type=int, default=1000)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--likelihood", default="student", choices=["student", "normal"])
    p.add_argument("--target-accept", type=float, default=0.9,
                   help="NUTS target acceptance probability (default 0.9; raise it, e.g. 0.99, "
                   "when transitions diverge)")
    p.add_argument("--holdout-fitter", default="lsq", choices=["lsq", "bayes", "none"],
                   help="fitter of the held-out check (default lsq: the point fit as in the "
                   "papers; bayes: posterior median predictions; none: skip it)")
    p.add_argument("--out", default=None, help="directory for compare.json")
    p.add_argument("--overwrite", action="store_true")


def _holdout(frame, law, opts, common, fitter, bayes_options):
    """Mean |prediction - loss| on the runs at the largest D of each group, fitted without them."""
    import numpy as np

    from lawfit.fit import _resolve_columns, fit
    from lawfit.table import default_by
    from lawfit.userlaw import resolve
    law_obj = resolve(law)
    cols = _resolve_columns(frame, law_obj, opts["x"], opts["d"], opts["y"], None)
    dcol = cols["d"] if "d" in law_obj.variables else cols[law_obj.variables[-1]]
    if dcol.startswith("@"):
        raise DataError("the held-out check needs a plain D column (not @COL)")
    by = list(opts["by"] if opts["by"] is not None else default_by(frame))
    work = frame.reset_index(drop=True)
    dmax = (work.groupby(by, dropna=False)[dcol].transform("max") if by
            else work[dcol].max())
    held = (work[dcol] >= dmax).to_numpy()
    train = work[~held]
    result = fit(train, law, fitter=fitter, **opts, **common,
                 **({"bayes_options": bayes_options} if fitter == "bayes" else {}))
    test = work[held]
    pred = result.predict(test[[*[cols[r] for r in law_obj.variables], *by]])
    err = np.abs(pred["prediction"].to_numpy() - test[cols["y"]].to_numpy(np.float64))
    out = {}
    keys = (test[by].astype(str).agg("|".join, axis=1).to_numpy() if by
            else np.full(len(test), ""))
    for k in dict.fromkeys(keys):
        out[k] = {"mae": float(np.mean(err[keys == k])), "n": int(np.sum(keys == k)),
                  "d": float(test.loc[keys == k, dcol].max())}
    return out


def _diag_text(g) -> str:
    d = g.info.get("diagnostics") if isinstance(g.info, dict) else None
    if not d:
        return ""
    return (f" (R-hat {d.get('r_hat_max', float('nan')):.3g}, "
            f"{d.get('divergences', 0)} divergences, bulk ESS {d.get('ess_bulk_min', 0):.0f})")


def cmd_compare(args) -> int:
    import numpy as np

    from lawfit import bayes
    from lawfit.fit import fit
    from lawfit.io import artefacts
    from lawfit.userlaw import resolve
    laws = csv_list(args.laws) or []
    if args.law:
        raise DataError("compare takes --laws LAW,LAW,... (not --law)")
    if len(laws) < 2:
        raise DataError(f"--laws needs at least two laws, got {args.laws!r}")
    if len(set(laws)) != len(laws):
        raise DataError(f"--laws names a law twice: {args.laws!r}")
    for name in laws:
        resolve(name)
    if min(args.chains, args.warmup, args.draws) < 1:
        raise DataError("--chains, --warmup and --draws must be positive")
    check_target_accept(args.target_accept)
    opts = fit_options(args)
    bayes_options = {"chains": args.chains, "warmup": args.warmup, "draws": args.draws,
                     "likelihood": args.likelihood, "target_accept": args.target_accept}
    if args.priors:
        bayes_options["priors"] = bayes.read_priors(args.priors)
    if args.out:
        artefacts.check_out_dir(args.out, ["compare.json"], args.overwrite, runs=args.runs)
    frame, source = load(args)
    from lawfit.analysis.critical import check_series
    from lawfit.expr import filter_frame
    check_series(filter_frame(frame, opts.get("where")), opts["by"], opts.get("x"))
    progress = Reporter(args.quiet)
    common = dict(source=source, progress=progress)
    fits = {}
    for name in laws:
        progress(f"law {name}: Bayesian fit")
        fits[name] = fit(frame, name, fitter="bayes", bayes_options=bayes_options, **opts,
                         **common)
    holdout = {}
    if args.holdout_fitter != "none":
        for name in laws:
            progress(f"law {name}: held-out check ({args.holdout_fitter})")
            holdout[name] = _holdout(frame, name, opts, common, args.holdout_fitter,
                                     bayes_options)
    ref = fits[laws[0]]
    rows, lines, n_warn, uncompared = [], [], 0, []
    for gi, g0 in enumerate(ref.groups):
        key = g0.key
        label = ", ".join(f"{k}={v}" for k, v in key.items()) or "(all runs)"
        loos = {}
        for name in laws:
            g = fits[name].groups[gi]
            if g.key != key or g.n_points != g0.n_points:
                raise DataError(f"laws {laws[0]} and {name} saw different runs in group {label}: "
                                "give the same --x/--d for every law")
            loos[name] = bayes.loo(g.posterior)
        table = bayes.compare(loos)
        hkey = "|".join(str(key[k]) for k in key)
        lines.append(f"{label}: {g0.n_points} runs; PSIS-LOO elpd on the loss scale (nats), "
                     f"higher is better")
        lines.append(f"  {'rank':<5}{'law':<16}{'elpd_loo':>10}{'se':>8}{'d_elpd':>9}{'dse':>8}"
                     f"{'p_loo':>8}{'weight':>8}{'k>thr':>7}{'heldout_mae':>13}  status")
        for name, r in table.iterrows():
            lo, g = loos[name], fits[name].groups[gi]
            h = holdout.get(name, {}).get(hkey)
            rows.append({"key": key, "law": name, "rank": int(r["rank"]),
                         "elpd_loo": float(r["elpd"]), "se": float(r["se"]),
                         "elpd_diff": float(r["elpd_diff"]), "dse": float(r["dse"]),
                         "p_loo": float(r["p"]), "weight": float(r["weight"]),
                         "pareto_k_max": float(np.max(lo.pareto_k)),
                         "pareto_k_threshold": lo.good_k, "n_bad_k": lo.n_bad_k,
                         "heldout": h, "status": g.status,
                         "diagnostics": g.info.get("diagnostics")})
            hm = "-" if not h else f"{h['mae']:.4g}"
            lines.append(f"  {int(r['rank']):<5}{name:<16}{r['elpd']:>10.2f}{r['se']:>8.2f}"
                         f"{r['elpd_diff']:>9.2f}{r['dse']:>8.2f}{r['p']:>8.1f}"
                         f"{r['weight']:>8.2f}{lo.n_bad_k:>7d}{hm:>13}  {g.status}")
        for name in laws:
            lo = loos[name]
            if lo.n_bad_k:
                n_warn += 1
                lines.append(f"  warning: {name}: {lo.n_bad_k} of {len(lo.pareto_k)} runs have "
                             f"Pareto k > {lo.good_k:.2f} (max {np.max(lo.pareto_k):.2f}): their "
                             "PSIS-LOO estimates are unreliable; trust the held-out error or "
                             "refit without them")
            for w in fits[name].groups[gi].warnings:
                lines.append(f"  warning: {name}: {w}")
        bad = [(name, fits[name].groups[gi]) for name in laws
               if fits[name].groups[gi].status == "not_converged"]
        for r in rows[-len(laws):]:
            r["comparable"] = not bad
        if bad:
            why = "; ".join(f"{name} {g.status}" + _diag_text(g) for name, g in bad)
            uncompared.append(f"{label}: {why}")
            lines.append(f"  NOT COMPARED: the ranking above is not reliable ({why})")
        if holdout:
            h0 = holdout[laws[0]].get(hkey)
            if h0:
                lines.append(f"  held out: the {h0['n']} runs at the largest D ({h0['d']:.4g}), "
                             f"each law refitted without them ({args.holdout_fitter})")
    if uncompared:
        lines.append(f"\n{len(uncompared)} of {len(ref.groups)} groups could not be compared "
                     "(a law's posterior did not converge: R-hat > 1.01 or divergent transitions; "
                     "try --target-accept 0.99, more --warmup, or tighter --priors):")
        lines += [f"  {u}" for u in uncompared]
    else:
        lines.append(f"\nevery group compared: all {len(laws)} laws converged in all "
                     f"{len(ref.groups)} groups (R-hat <= 1.01, no divergent transitions)")
    print("\n".join(lines))
    if args.out:
        doc = {"laws": laws, "criterion": "PSIS-LOO elpd (loss scale, nats)",
               "holdout": {"rule": "largest D per group", "fitter": args.holdout_fitter},
               "bayes": {k: v for k, v in bayes_options.items() if k != "priors"},
               "data": source, "rows": rows, "not_compared": uncompared}
        out = artefacts.prepare_out(args.out, ["compare.json"], args.overwrite)
        artefacts.write_json(doc, out / "compare.json")
        print(f"wrote {out / 'compare.json'}", file=sys.stderr)
    return 0


# --- registration ----------------------------------------------------------------------------

def register(subparsers) -> None:
    """Add ``lawfit compare`` to ``subparsers``."""
    add_command(subparsers, "compare", "rank laws per group by PSIS-LOO (Bayesian fits) and held-out error",
                _compare_add, cmd_compare)

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
    p.add_argument("--target-accept", type=float, default=0.99,
                   help="NUTS target acceptance probability (default 0.99, higher than a fit's "
                   "0.9: the posteriors of laws that do not describe the data have edges where "
                   "larger steps diverge; raise it, e.g. 0.995, when transitions still diverge)")
    p.add_argument("--holdout-fitter", default="lsq", choices=["lsq", "bayes", "none"],
                   help="fitter of the held-out check (default lsq: the point fit as in the "
                   "papers; bayes: posterior median predictions; none: skip it)")
    p.add_argument("--out", default=None, help="directory for compare.json")
    p.add_argument("--overwrite", action="store_true")


def format_comparison(cmp) -> str:
    """The printed table of a :class:`lawfit.analysis.compare.Comparison`: per group, every law
    best first, warnings, NOT COMPARED marks, and a closing line on what could be compared."""
    lines, uncompared = [], cmp.not_compared
    for g in cmp.groups:
        lines.append(f"{g.label}: {g.n_runs} runs; PSIS-LOO elpd on the loss scale (nats), "
                     f"higher is better")
        lines.append(f"  {'rank':<5}{'law':<16}{'elpd_loo':>10}{'se':>8}{'d_elpd':>9}{'dse':>8}"
                     f"{'p_loo':>8}{'weight':>8}{'k>thr':>7}{'heldout_mae':>13}  status")
        for r in g.scores:
            hm = "-" if not r.heldout else f"{r.heldout['mae']:.4g}"
            lines.append(f"  {r.rank:<5}{r.law:<16}{r.elpd_loo:>10.2f}{r.se:>8.2f}"
                         f"{r.elpd_diff:>9.2f}{r.dse:>8.2f}{r.p_loo:>8.1f}"
                         f"{r.weight:>8.2f}{r.n_bad_k:>7d}{hm:>13}  {r.status}")
        for law in cmp.laws:
            r = next(s for s in g.scores if s.law == law)
            if r.n_bad_k:
                lines.append(f"  warning: {law}: {r.n_bad_k} of {g.n_runs} runs have "
                             f"Pareto k > {r.pareto_k_threshold:.2f} (max {r.pareto_k_max:.2f}): "
                             "their PSIS-LOO estimates are unreliable; trust the held-out error "
                             "or refit without them")
            for w in r.warnings:
                lines.append(f"  warning: {law}: {w}")
        if not g.comparable:
            lines.append(f"  NOT COMPARED: the ranking above is not reliable ({g.reason})")
        if g.heldout_runs:
            lines.append(f"  held out: the {g.heldout_runs['n']} runs at the largest D "
                         f"({g.heldout_runs['d']:.4g}), each law refitted without them "
                         f"({cmp.holdout_fitter})")
    if uncompared:
        lines.append(f"\n{len(uncompared)} of {len(cmp.groups)} groups could not be compared "
                     "(a law's posterior did not converge: R-hat > 1.01 or divergent transitions; "
                     "try --target-accept 0.995, more --warmup and --draws, or tighter "
                     "--priors):")
        lines += [f"  {u}" for u in uncompared]
    else:
        lines.append(f"\nevery group compared: all {len(cmp.laws)} laws converged in all "
                     f"{len(cmp.groups)} groups (R-hat <= 1.01, no divergent transitions)")
    return "\n".join(lines)


def cmd_compare(args) -> int:
    from lawfit.analysis.compare import compare
    from lawfit.io import artefacts
    laws = csv_list(args.laws) or []
    if args.law:
        raise DataError("compare takes --laws LAW,LAW,... (not --law)")
    if len(laws) < 2:
        raise DataError(f"--laws needs at least two laws, got {args.laws!r}")
    if len(set(laws)) != len(laws):
        raise DataError(f"--laws names a law twice: {args.laws!r}")
    if min(args.chains, args.warmup, args.draws) < 1:
        raise DataError("--chains, --warmup and --draws must be positive")
    check_target_accept(args.target_accept)
    opts = fit_options(args)
    priors = None
    if args.priors:
        from lawfit.io.priors import read_priors
        priors = read_priors(args.priors)
    if args.out:
        artefacts.check_out_dir(args.out, ["compare.json"], args.overwrite, runs=args.runs)
    frame, source = load(args)
    cmp = compare(frame, laws, **opts, priors=priors, chains=args.chains, warmup=args.warmup,
                  draws=args.draws, likelihood=args.likelihood,
                  target_accept=args.target_accept, holdout_fitter=args.holdout_fitter,
                  source=source, progress=Reporter(args.quiet))
    print(format_comparison(cmp))
    if args.out:
        out = artefacts.prepare_out(args.out, ["compare.json"], args.overwrite)
        artefacts.write_json(artefacts.jsonable(cmp.as_dict()), out / "compare.json")
        print(f"wrote {out / 'compare.json'}", file=sys.stderr)
    return 0


# --- registration ----------------------------------------------------------------------------

def register(subparsers) -> None:
    """Add ``lawfit compare`` to ``subparsers``."""
    add_command(subparsers, "compare", "rank laws per group by PSIS-LOO (Bayesian fits) and held-out error",
                _compare_add, cmd_compare)

"""Named fitting procedures of the literature: a law, an objective, a start grid and a procedure,
bound under one name so that a user reproduces a paper's procedure by name.

- ``hoffmann2022``: Chinchilla law over model parameters and tokens, summed Huber(1e-3) on log
  loss, the 4,500-start Hoffmann grid (Hoffmann et al. 2022, Approach 3).
- ``epoch2024``: the same objective and grid as Epoch AI's replication (Besiroglu et al. 2024),
  with bootstrap intervals (default 1,000 resamples).
- ``zhang2024``: the two-stage procedure of Zhang et al. 2024 for the multiplicative law: summed
  Huber(1e-3) on the loss; stage 1 fits the model-size and pretraining-size series of each
  task x method jointly with E and beta shared; stage 2 freezes E and beta and fits (A, alpha) of
  the PET-size series. The bootstrap resamples the whole recipe: resample b refits stage 1, then
  refits stage 2 with E and beta frozen at resample b's stage-1 values (paired draws; each stage's
  runs are resampled, a stratified bootstrap of the table), so stage-2 intervals carry stage 1's
  uncertainty. The Bayesian fitter samples the joint posterior of all series with E and beta
  shared (the recipe's own model), so the PET-size A and alpha integrate over E and beta.
"""
from __future__ import annotations

from dataclasses import replace

import pandas as pd

from lawfit.errors import DataError
from lawfit.expr import filter_with_record
from lawfit.fit import fit
from lawfit.result import FitResult
from lawfit.table import frame_sha256, require_columns

__all__ = ["RECIPES", "STAGE1", "run_recipe", "zhang2024"]

RECIPES = {
    "hoffmann2022": dict(law="chinchilla", objective="huber-log", delta=1e-3, starts="grid"),
    "epoch2024": dict(law="chinchilla", objective="huber-log", delta=1e-3, starts="grid",
                      bootstrap=1000),
    "zhang2024": dict(law="multiplicative", objective="huber", delta=1e-3, starts="grid"),
}
STAGE1 = ("model_params", "pretrain_tokens")
# options a plain fit takes that the zhang2024 recipe sets itself (or does not use)
_ZHANG_OWN = ("x", "objective", "delta", "solver", "pre_power", "joint", "share", "fixed")


def run_recipe(frame: pd.DataFrame, name: str | None = None, *, law=None,
               bootstrap: int | None = None, **options) -> FitResult:
    """Fit ``frame`` by a named recipe, or plainly by ``law`` when ``name`` is None: the one
    entry that ``lawfit fit --recipe`` and ``lawfit critical --recipe`` call.

    Parameters
    ----------
    frame : pandas.DataFrame
        The runs table.
    name : {"hoffmann2022", "epoch2024", "zhang2024"} or None
        The recipe. ``hoffmann2022`` / ``epoch2024`` preset the law, the objective and delta
        (and epoch2024 the bootstrap) where they are not given; ``zhang2024`` runs
        :func:`zhang2024` (its own law, objective, X and joint fit; ``d`` defaults to
        ``finetune_examples``).
    law : str or Law, optional
        The law (default: the recipe's, else ``multiplicative``); not used by ``zhang2024``.
    bootstrap : int, optional
        Bootstrap resamples (default: the recipe's, else none).
    options
        Further :func:`lawfit.fit` arguments (x, d, y, by, where, objective, delta, starts,
        seeds, seed, level, fitter, source, progress, bayes_options, solver, joint, share,
        fixed, pre_power, ...).

    Returns
    -------
    FitResult
    """
    if name == "zhang2024":
        if options.get("fixed") or options.get("joint") or options.get("share"):
            raise DataError("--recipe zhang2024 sets its own joint fit: drop --fix, --joint and "
                            "--share")
        opts = {k: v for k, v in options.items() if k not in _ZHANG_OWN}
        opts["d"] = opts.get("d") or "finetune_examples"
        if opts.get("by") is None:
            opts.pop("by", None)
        return zhang2024(frame, bootstrap=bootstrap or 0, **opts)
    if name is not None and name not in RECIPES:
        raise DataError(f"unknown recipe {name!r}: choose one of {', '.join(RECIPES)}")
    preset = dict(RECIPES.get(name, {}))
    law = law or preset.pop("law", "multiplicative")
    for k in ("objective", "delta"):
        if options.get(k) is None and k in preset:
            options[k] = preset[k]
    if not bootstrap and "bootstrap" in preset:
        bootstrap = preset["bootstrap"]
    return fit(frame, law, bootstrap=bootstrap or 0, **options)


def zhang2024(frame: pd.DataFrame, *, factor: str = "factor", d: str = "finetune_examples",
              y: str = "loss", by=("task", "method"), bootstrap: int = 0, seed: int = 0,
              fitter: str = "lsq", source: dict | None = None, progress=None,
              **options) -> FitResult:
    """Two-stage joint fit of Zhang et al. 2024 on a table whose ``factor`` column names, per run,
    the column that is its X (``model_params``, ``pretrain_tokens`` or ``pet_params``).

    Parameters
    ----------
    frame : DataFrame
        Runs table with a ``factor`` column.
    bootstrap : int
        Resamples of the whole two-stage procedure (least squares): stage 2 of resample b is
        refitted with E and beta frozen at stage 1's draw b.
    fitter : {"lsq", "bayes"}
        "bayes" samples one joint posterior per task x method over every series, E and beta
        shared (PET-size series included), instead of freezing E and beta.

    Returns
    -------
    FitResult
        Groups per task x method x factor. Stage-2 groups list E and beta as frozen
        (``GroupFit.frozen``, ``"frozen": true`` in fit.json); their draws carry the paired
        stage-1 values.
    """
    require_columns(frame, [factor])
    source = source or {"path": None, "sha256": frame_sha256(frame), "rows": len(frame)}
    frame, where_record = filter_with_record(frame, options.pop("where", None))
    by = [c for c in by if c in frame.columns]
    kinds = set(frame[factor].astype(str))
    stage1_rows = frame[frame[factor].astype(str).isin(STAGE1)]
    if stage1_rows.empty:
        raise DataError(f"the zhang2024 recipe needs runs with {factor} = model_params or "
                        f"pretrain_tokens (stage 1); the table has {sorted(kinds)}")
    common = dict(law="multiplicative", objective="huber", delta=1e-3, x=f"@{factor}", d=d, y=y,
                  by=by, joint=factor, bootstrap=bootstrap, seed=seed, fitter=fitter,
                  source=source, progress=progress, **options)
    stages = ["joint fit of " + ", ".join(STAGE1) + " with E, beta shared",
              "other series with E, beta frozen at stage 1 (bootstrap: paired per resample)"]
    if fitter == "bayes":
        if progress:
            progress("joint posterior of every series, E and beta shared")
        result = fit(frame, share=("E", "beta"), **common)
        settings = dict(result.settings) | where_record | {
            "recipe": "zhang2024", "share": ["E", "beta"],
            "stages": ["one joint posterior per group over every series with E, beta shared "
                       "(the Bayesian form of the two stages: PET-size A, alpha integrate over "
                       "E, beta)"]}
        return replace(result, settings=settings)
    if progress:
        progress("stage 1: model-size and pretraining-size series, E and beta shared")
    stage1 = fit(stage1_rows, share=("E", "beta"), **common)
    groups = list(stage1.groups)
    rest = frame[~frame[factor].astype(str).isin(STAGE1)]
    if not rest.empty:
        shared, shared_draws, withheld = {}, {}, {}
        law = stage1.law
        ie, ib = law.params.index("E"), law.params.index("beta")
        for g in stage1.groups:
            k = tuple(str(g.key[c]) for c in by)
            shared[k] = {"E": g.params["E"], "beta": g.params["beta"]}
            # every subset of a joint fit carries the same (shared) E and beta per draw
            shared_draws[k] = {"E": g.draws[:, ie], "beta": g.draws[:, ib]}
            withheld[k] = g.interval_status == "withheld"

        def key_of(key):
            k = tuple(str(key[c]) for c in by)
            if k not in shared:
                raise DataError(f"group {key} has PET-size runs but no stage-1 runs to take E and "
                                "beta from")
            return k

        if progress:
            progress("stage 2: other series with E and beta frozen at stage 1"
                     + (" (paired with stage 1's bootstrap draws)" if bootstrap else ""))
        stage2 = fit(rest, fixed=lambda key: shared[key_of(key)],
                     fixed_draws=(lambda key: shared_draws[key_of(key)]) if bootstrap else None,
                     **common)
        for g in stage2.groups:
            info = dict(g.info) | {"frozen_from": "stage 1"}
            k = tuple(str(g.key[c]) for c in by)
            if bootstrap and withheld.get(k):
                info["bootstrap"] = {"resamples": bootstrap, "failed": None, "interval": "withheld",
                                     "message": "interval withheld: stage 1's bootstrap interval "
                                     "of this task x method was withheld (its refits failed)"}
                g = replace(g, warnings=g.warnings + (info["bootstrap"]["message"],))
            groups.append(replace(g, info=info))
    settings = dict(stage1.settings) | where_record | {"recipe": "zhang2024",
                                                       "share": ["E", "beta"], "stages": stages}
    return FitResult(law=stage1.law, objective=stage1.objective, fitter=fitter,
                     columns=stage1.columns, by=stage1.by, groups=tuple(groups),
                     settings=settings, source=stage1.source, level=stage1.level)

"""Named fitting procedures of the literature: a law, an objective, a start grid and a procedure,
bound under one name so that a user reproduces a paper's procedure by name.

- ``hoffmann2022``: Chinchilla law over model parameters and tokens, summed Huber(1e-3) on log
  loss, the 4,500-start Hoffmann grid (Hoffmann et al. 2022, Approach 3).
- ``epoch2024``: the same objective and grid as Epoch AI's replication (Besiroglu et al. 2024),
  with bootstrap intervals (default 1,000 resamples).
- ``zhang2024``: the two-stage procedure of Zhang et al. 2024 for the multiplicative law: summed
  Huber(1e-3) on the loss; stage 1 fits the model-size and pretraining-size series of each
  task x method jointly with E and beta shared; stage 2 freezes E and beta and fits (A, alpha) of
  the PET-size series. Stage-2 intervals are conditional on stage 1's E and beta.
"""
from __future__ import annotations

import pandas as pd

from .data import DataError, frame_sha256, require_columns
from .expr import filter_with_record
from .fit import fit
from .result import FitResult

RECIPES = {
    "hoffmann2022": dict(law="chinchilla", objective="huber-log", delta=1e-3, starts="grid"),
    "epoch2024": dict(law="chinchilla", objective="huber-log", delta=1e-3, starts="grid",
                      bootstrap=1000),
    "zhang2024": dict(law="multiplicative", objective="huber", delta=1e-3, starts="grid"),
}
STAGE1 = ("model_params", "pretrain_tokens")


def zhang2024(frame: pd.DataFrame, *, factor: str = "factor", d: str = "finetune_examples",
              y: str = "loss", by=("task", "method"), bootstrap: int = 0, seed: int = 0,
              fitter: str = "lsq", source: dict | None = None, progress=None,
              **options) -> FitResult:
    """Two-stage joint fit of Zhang et al. 2024 on a table whose ``factor`` column names, per run,
    the column that is its X (``model_params``, ``pretrain_tokens`` or ``pet_params``)."""
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
    if progress:
        progress("stage 1: model-size and pretraining-size series, E and beta shared")
    stage1 = fit(stage1_rows, share=("E", "beta"), **common)
    groups = list(stage1.groups)
    rest = frame[~frame[factor].astype(str).isin(STAGE1)]
    if not rest.empty:
        shared = {}
        for g in stage1.groups:
            shared[tuple(str(g.key[k]) for k in by)] = {"E": g.params["E"],
                                                        "beta": g.params["beta"]}

        def frozen(key):
            k = tuple(str(key[c]) for c in by)
            if k not in shared:
                raise DataError(f"group {key} has PET-size runs but no stage-1 runs to take E and "
                                "beta from")
            return shared[k]

        if progress:
            progress("stage 2: other series with E and beta frozen at stage 1")
        stage2 = fit(rest, fixed=frozen, **common)
        groups += list(stage2.groups)
    settings = dict(stage1.settings) | where_record | {"recipe": "zhang2024", "share": ["E", "beta"],
                                        "stages": ["joint fit of " + ", ".join(STAGE1)
                                                   + " with E, beta shared",
                                                   "other series with E, beta frozen"]}
    return FitResult(law=stage1.law, objective=stage1.objective, fitter=fitter,
                     columns=stage1.columns, by=stage1.by, groups=tuple(groups),
                     settings=settings, source=stage1.source, level=stage1.level)

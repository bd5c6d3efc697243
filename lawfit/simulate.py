"""Draw runs tables from known law parameters: for tests, for studying designs before spending GPU
time, and (``paper_grid``) for a paper-shaped table built from Zhang et al. 2024's Tables 1b and 4.

Noise is additive Gaussian on the loss, one draw per (configuration, seed); rows follow the runs
table contract (lawfit/table.py) with ``simulated = True``.
"""
from __future__ import annotations

import hashlib
import itertools
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from lawfit.errors import DataError

from . import paper
from .laws import Law, check_params, get_law


def _run_id(row: Mapping) -> str:
    text = ",".join(f"{k}={row[k]}" for k in sorted(row) if k not in ("seed", "loss"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def simulate(law: str | Law, params: Mapping[str, float], grid: Mapping[str, Sequence[float]],
             *, columns: Mapping[str, str] | None = None, noise: float = 0.005, seeds: int = 3,
             seed: int = 0, extra: Mapping | None = None) -> pd.DataFrame:
    """Runs on the Cartesian product of ``grid`` (column -> values), loss from ``law`` at natural
    ``params`` plus N(0, noise^2), ``seeds`` repeats per configuration.

    ``columns`` maps the law's variable roles to grid columns (default: the law's default columns).
    ``extra`` adds constant columns (task, method, ...).
    """
    law = law if isinstance(law, Law) else get_law(law)
    missing = [p for p in law.params if p not in params]
    if missing:
        raise DataError(f"simulate needs parameters {missing} of law {law.name}")
    unknown = [p for p in params if p not in law.params]
    if unknown:
        raise DataError(f"unknown parameter(s) {unknown} for law {law.name!r}: its parameters "
                        f"are {', '.join(law.params)}")
    check_params(law, params)
    cols = dict(law.default_columns) | dict(columns or {})
    for role in law.variables:
        if cols[role] not in grid:
            raise DataError(f"the grid needs column {cols[role]!r} ({role} of law {law.name})")
    for name, values in grid.items():
        try:
            arr = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError(f"grid column {name!r}: values must be numbers") from None
        if arr.ndim != 1 or arr.size == 0:
            raise DataError(f"grid column {name!r} needs at least one value")
        if name in (cols[r] for r in law.variables) and not (np.isfinite(arr).all()
                                                              and (arr > 0).all()):
            raise DataError(f"grid column {name!r} must hold positive, finite sizes "
                            f"(got {', '.join(f'{v:g}' for v in arr[~(arr > 0) | ~np.isfinite(arr)][:3])})")
    if isinstance(seeds, bool) or not isinstance(seeds, (int, np.integer)) or seeds < 1:
        raise DataError(f"seeds must be a count >= 1, got {seeds!r}")
    if not (np.isfinite(noise) and noise >= 0):
        raise DataError(f"noise must be a finite sd >= 0, got {noise!r}")
    rng = np.random.default_rng(seed)
    names = list(grid)
    rows = []
    for values in itertools.product(*(grid[n] for n in names)):
        cfg = dict(extra or {}) | dict(zip(names, values))
        with np.errstate(over="ignore", invalid="ignore"):
            mean = float(law.predict(params, **{r: np.array([cfg[cols[r]]])
                                                for r in law.variables})[0])
        for s in range(seeds):
            rows.append(cfg | {"seed": s, "loss_true": mean})
    frame = pd.DataFrame(rows)
    if not np.isfinite(frame["loss_true"]).all():
        raise DataError("the law gives non-finite losses on this grid: check the parameters")
    frame["loss"] = frame["loss_true"] + rng.normal(0.0, noise, len(frame))
    frame["run_id"] = [_run_id(r) for r in frame.drop(columns=["loss_true"]).to_dict("records")]
    frame["simulated"] = True
    return frame


def paper_grid(*, noise: float = 0.005, seeds: int = 3, seed: int = 0,
               tasks: Sequence[str] = paper.TASKS,
               methods: Sequence[str] = paper.METHODS) -> pd.DataFrame:
    """A runs table on Zhang et al. 2024's grid (Table 1b) from their fitted parameters (Table 4).

    Three series per task x method, marked in column ``factor`` by the column that varies:
    ``model_params`` (1B..16B at the final pretraining checkpoint), ``pretrain_tokens`` (1B model,
    intermediate checkpoints) and, for prompt tuning and LoRA, ``pet_params`` (1B model, prompt
    lengths / LoRA ranks). Every series crosses its X with the method's finetuning sizes. Fit it
    with ``lawfit fit --recipe zhang2024`` (joint fit over ``factor``, X = ``@factor``).
    """
    law = get_law("multiplicative")
    parts = []
    for ti, task in enumerate(tasks):
        tokens = paper.PRETRAIN_TOKENS[task]
        for mi, method in enumerate(methods):
            pet_default = paper.DEFAULT_PET.get(method)
            base = {"task": task, "method": method, "model_params": 1e9,
                    "pretrain_tokens": max(tokens), "pet_params": pet_default}
            series = {"model_params": paper.MODEL_SIZES, "pretrain_tokens": tokens}
            if method != "fmt":
                series["pet_params"] = paper.pet_sizes(method)
            for fi, (factor, values) in enumerate(series.items()):
                grid = {factor: values, "finetune_examples": paper.finetune_sizes(task, method)}
                extra = {k: v for k, v in base.items() if k not in grid} | {"factor": factor}
                part = simulate(law, paper.law_params(task, method, factor), grid,
                                columns={"x": factor}, noise=noise, seeds=seeds,
                                seed=seed * 1000 + ti * 100 + mi * 10 + fi, extra=extra)
                parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    for c in ("model_params", "pretrain_tokens", "finetune_examples"):
        frame[c] = frame[c].astype("int64")
    frame["pet_params"] = frame["pet_params"].astype("Int64")
    order = ["task", "method", "factor", "model_params", "pretrain_tokens", "finetune_examples",
             "pet_params", "seed", "loss", "loss_true", "run_id", "simulated"]
    return frame[order]

"""``lawfit suggest`` (registered by ``register``, listed in ``lawfit.cli.main.COMMAND_MODULES``): which runs to launch
next. Thin: one call into suggest.py, then the table, ``suggest.json``, a figure and, with
``--emit-toml``, the batch as runners sweep files.

Sweep files (``--emit-toml FILE --sweep BASE.toml``): the runners' sweep format is a grid (models x
finetuning sizes x seeds x methods x PET sizes), so a batch is written as the fewest grids that
hold exactly its runs: one file when the batch is one grid, else FILE's stem with ``-1``, ``-2``,
... Each copies BASE's settings (task, pretraining, finetuning, evaluation, executors) and its
output and checkpoint directories (as absolute paths), so the new rows land beside the old ones
and no model is pretrained again; a run's seed is the smallest seed its configuration has not
been run with. No existing file is ever overwritten.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from lawfit.cli.common import (
    Reporter,
    add_command,
    add_data_arguments,
    csv_list,
    fit_options,
    load,
    parse_assignments,
    print_written,
)
from lawfit.errors import DataError

if TYPE_CHECKING:
    import pandas as pd



def parse_candidates(text: str | None) -> dict | None:
    """``method=prompt:lora,model_params=8e9:16e9`` -> {column: [values]} (numbers as floats)."""
    if text is None:
        return None
    out: dict = {}
    for item in csv_list(text) or []:
        if "=" not in item:
            raise DataError(f"--candidates expects COL=v1:v2:...,COL=...; got {item!r}")
        col, vals = (s.strip() for s in item.split("=", 1))
        if not col:
            raise DataError(f"--candidates: a column name is missing in {item!r}")
        values = [v.strip() for v in vals.split(":")]
        if not values or any(v == "" for v in values):
            raise DataError(f"--candidates {col}: empty value in {vals!r} (values are separated "
                            "by ':')")
        if col in out:
            raise DataError(f"--candidates names {col!r} twice")
        parsed = []
        for v in values:
            try:
                parsed.append(float(v))
            except ValueError:
                parsed.append(v)
        out[col] = parsed
    if not out:
        raise DataError("--candidates is empty")
    return out


def _add(p):
    add_data_arguments(p)
    p.add_argument("--between", default=None, help="target: the crossing of two methods, e.g. "
                   "prompt,lora (with --at)")
    p.add_argument("--at", default=None, help="the X of the crossing, e.g. model_params=8e9")
    p.add_argument("--crossing", type=int, default=1, help="which crossing of the fitted curves, "
                   "counted from the smallest D (default 1)")
    p.add_argument("--d-range", default="1,1e12", help="searched D range LO,HI (default 1,1e12)")
    p.add_argument("--target", default=None, help="target: the prediction at a point, e.g. "
                   "model_params=16e9,finetune_examples=1e6,method=lora")
    p.add_argument("--target-param", default=None, help="target: a law parameter, e.g. alpha "
                   "(name the group with --group)")
    p.add_argument("--group", default=None, help="the group the target belongs to, e.g. "
                   "task=wmt14_en_de or method=lora")
    p.add_argument("--candidates", default=None, help="candidate grid COL=v1:v2:..,COL=... "
                   "(default: the target's methods x measured X (and the target's) x measured D)")
    p.add_argument("--n", type=int, default=None, help="runs in the batch (default 8)")
    p.add_argument("--budget", type=float, default=None, help="total cost allowed instead of --n")
    p.add_argument("--cost", default=None, help="cost of a run as an expression over candidate "
                   "columns (default model_params * finetune_examples)")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples (default 200)")
    p.add_argument("--level", type=float, default=0.95, help="interval level (default 0.95)")
    p.add_argument("--out", default=None, help="directory for suggest.json and suggest.png")
    p.add_argument("--overwrite", action="store_true", help="replace suggest.json/png in --out")
    p.add_argument("--emit-toml", default=None, help="write the batch as runners sweep TOML "
                   "(needs --sweep; never overwrites)")
    p.add_argument("--sweep", default=None, help="the sweep TOML that produced RUNS (--emit-toml)")


def _target(args, xcol_default: str = "model_params"):
    from lawfit.analysis.suggest import CrossingTarget, ParameterTarget, PredictionTarget
    from lawfit.cli.analysis import parse_at
    given = [n for n, v in (("--between", args.between), ("--target", args.target),
                            ("--target-param", args.target_param)) if v]
    if len(given) != 1:
        raise DataError("give exactly one target: --between A,B --at COL=X (a crossing), "
                        "--target COL=V,... (a prediction) or --target-param NAME"
                        + (f"; got {', '.join(given)}" if given else ""))
    group = parse_assignments(args.group or "")
    group = {k: str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)
             for k, v in group.items()}
    if args.between:
        parts = csv_list(args.between) or []
        if len(parts) != 2 or parts[0] == parts[1]:
            raise DataError(f"--between expects two different methods, e.g. prompt,lora; got "
                            f"{args.between!r}")
        if not args.at:
            raise DataError("--between needs --at COL=X, e.g. --at model_params=8e9")
        at = parse_at([args.at])
        if len(at) != 1 or len(next(iter(at.values()))) != 1:
            raise DataError(f"--at takes one X value, e.g. model_params=8e9; got {args.at!r}")
        (col, (x,)), = at.items()
        try:
            lo, hi = (float(t) for t in args.d_range.split(","))
        except ValueError:
            raise DataError(f"--d-range expects LO,HI, e.g. 1,1e12; got {args.d_range!r}") from None
        if not (0 < lo < hi < math.inf):
            raise DataError(f"--d-range needs 0 < LO < HI, got {args.d_range!r}")
        if args.crossing < 1:
            raise DataError(f"--crossing counts from 1, got {args.crossing}")
        return CrossingTarget((parts[0], parts[1]), x, group=group, crossing=args.crossing - 1,
                              d_range=(lo, hi), x_column=col)
    if args.target:
        point = parse_assignments(args.target)
        return PredictionTarget({**group, **point})
    return ParameterTarget(args.target_param.strip(), group=group)


def cmd_suggest(args) -> int:
    from lawfit.analysis.suggest import suggest
    from lawfit.io import artefacts
    from lawfit.io.results import SUGGEST_FILES, write_suggestion
    target = _target(args)
    candidates = parse_candidates(args.candidates)
    if args.n is not None and args.budget is not None:
        raise DataError("give --n or --budget, not both")
    if args.emit_toml:
        if not args.sweep:
            raise DataError("--emit-toml needs --sweep BASE.toml (the sweep that produced the "
                            "runs: its models and settings)")
        if Path(args.emit_toml).suffix != ".toml":
            raise DataError(f"--emit-toml must name a .toml file, got {args.emit_toml}")
        if Path(args.emit_toml).exists():
            raise DataError(f"{args.emit_toml} exists: choose another --emit-toml (existing files "
                            "are never overwritten)")
    if args.out:
        artefacts.prepare_out(args.out, [*SUGGEST_FILES, "suggest.png"], args.overwrite)
    frame, source = load(args)
    opts = fit_options(args)
    if args.bootstrap < 20:
        raise DataError(f"--bootstrap must be at least 20, got {args.bootstrap}")
    progress = Reporter(args.quiet)
    res = suggest(frame, target, candidates=candidates, n=args.n, budget=args.budget,
                  cost=args.cost, law=args.law or "multiplicative", bootstrap=args.bootstrap,
                  level=args.level, progress=progress, source=source, **opts)
    _print(res)
    if args.out:
        from lawfit.plot import plot_suggestion
        paths = write_suggestion(res, args.out, overwrite=True) + plot_suggestion(res, args.out)
        print("wrote " + ", ".join(map(str, paths)), file=sys.stderr)
    if args.emit_toml:
        print_written(emit_toml(res.runs, frame, args.sweep, args.emit_toml))
    return 0


def _print(res) -> None:
    import pandas as pd
    t = res.target
    print(f"target: {t['kind']} "
          + {"crossing": lambda: f"{t['between'][0]} vs {t['between'][1]} at "
                                 f"{t['x_column']}={t['x']:g}"
                                 + (f" ({', '.join(f'{k}={v}' for k, v in t['group'].items())})"
                                    if t['group'] else ""),
             "prediction": lambda: ", ".join(f"{k}={v}" for k, v in t["point"].items()),
             "parameter": lambda: f"{t['param']} of " + ", ".join(
                 f"{k}={v}" for k, v in t["group"].items())}[t["kind"]]()
          + f": estimate {res.estimate:.4g}, {res.level:.0%} interval [{res.interval_now[0]:.4g}, "
            f"{res.interval_now[1]:.4g}] {res.unit} (width {res.width_now:.4g})")
    cols = [c for c in res.runs.columns if c not in ("width_alone",)]
    with pd.option_context("display.width", 200, "display.max_columns", 30,
                           "display.float_format", "{:.4g}".format):
        print(res.runs[cols].to_string(index=False) if len(res.runs) else "(no runs picked)")
    print(f"expected width after {len(res.runs)} runs: {res.width_after:.4g} {res.unit} "
          f"({res.width_after / res.width_now:.0%} of now); total cost {res.total_cost:.4g} "
          f"({res.cost_expr})")
    for note in res.notes:
        print(f"note: {note}", file=sys.stderr)


# --- the batch as runners sweep files -------------------------------------------------------------

def _toml_value(v) -> str:
    import numpy as np
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        if not math.isfinite(v):
            raise DataError(f"cannot write {v} to TOML")
        return repr(float(v))
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    if v is None:
        raise DataError("cannot write a missing value to TOML")
    raise DataError(f"cannot write {type(v).__name__} to TOML")


def _toml_key(k: str) -> str:
    import re
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def _toml(doc: dict, header: str) -> str:
    lines = [header]
    for section, table in doc.items():
        lines.append(f"\n[{section}]")
        for k, v in table.items():
            if v is not None:
                lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
    return "\n".join(lines) + "\n"


def emit_toml(runs: pd.DataFrame, frame: pd.DataFrame, base: str, path: str) -> list:
    """Write the picked ``runs`` as runners sweep TOML files next to ``path`` (see the module
    docstring); returns the paths written."""
    import tomllib

    import numpy as np
    import pandas as pd
    try:
        from runners.config import param_count
        from runners.sweep import SweepError, load_plan
    except ModuleNotFoundError as exc:
        raise DataError(f"--emit-toml needs the runners: pip install -e '.[runners]' "
                        f"({exc})") from None
    base_path = Path(base)
    try:
        plan = load_plan(base_path)
        doc = tomllib.loads(base_path.read_text())
    except SweepError as exc:
        raise DataError(f"--sweep: {exc}") from None
    if len(runs) == 0:
        raise DataError("no runs were picked: nothing to write with --emit-toml")
    need = {"method", "model_params", "finetune_examples"}
    if not need <= set(runs.columns):
        raise DataError(f"--emit-toml needs candidates with columns {sorted(need)}; the picks "
                        f"have {list(runs.columns)}")
    from runners.config import ModelConfig
    models = {}
    for job in plan.pretrain_jobs:
        m = {k: v for k, v in job["model"].items() if k != "vocab_size"}
        models[param_count(ModelConfig(vocab_size=job["model"]["vocab_size"], **m))] = m
    sw = dict(doc.get("sweep", {}))
    pets = {"prompt": sw.get("prompt_lengths", [8]), "lora": sw.get("lora_ranks", [4])}
    blocks: dict = {}
    for r in runs.to_dict("records"):
        x = int(round(float(r["model_params"])))
        if x not in models:
            raise DataError(f"model_params={x} is not a model of {base} (its models have "
                            f"{sorted(models)} parameters)")
        method = str(r["method"])
        if method not in ("fmt", "prompt", "lora"):
            raise DataError(f"--emit-toml: the runners have no method {method!r}")
        pet = None
        if method != "fmt":
            if "pet_params" in r and r["pet_params"] is not None and not pd.isna(r["pet_params"]):
                pet = int(r["pet_params"])
            elif len(pets[method]) == 1:
                pet = int(pets[method][0])
            else:
                raise DataError(f"{base} lists several PET sizes for {method} ({pets[method]}): "
                                "include pet_params in --candidates")
        d = int(round(float(r["finetune_examples"])))
        same = ((frame["method"].astype(str) == method)
                & np.isclose(pd.to_numeric(frame["model_params"], errors="coerce"), x)
                & np.isclose(pd.to_numeric(frame["finetune_examples"], errors="coerce"), d))
        if pet is not None and "pet_params" in frame.columns:
            same &= np.isclose(pd.to_numeric(frame["pet_params"], errors="coerce"), pet)
        used = set(pd.to_numeric(frame.loc[same, "seed"], errors="coerce").dropna().astype(int)) \
            if "seed" in frame.columns else set()
        seed = next(s for s in range(len(used) + 1) if s not in used)
        blocks.setdefault((x, seed, pet), {}).setdefault(method, set()).add(d)
    grids: dict = {}
    for (x, seed, pet), by_method in blocks.items():
        merged: dict = {}
        for method, ds in by_method.items():
            merged.setdefault(tuple(sorted(ds)), []).append(method)
        for ds, methods in merged.items():
            key = (seed, tuple(sorted(methods)), ds, pet)
            grids.setdefault(key, []).append(x)
    base_dir = base_path.resolve().parent
    out_dir = Path(sw.get("out", sw.get("name", base_path.stem)))
    ckpt = Path(sw["checkpoint_dir"]) if "checkpoint_dir" in sw else out_dir / ".checkpoints"
    target = Path(path)
    names = ([target] if len(grids) == 1 else
             [target.with_name(f"{target.stem}-{i + 1}{target.suffix}") for i in range(len(grids))])
    clash = [p for p in names if p.exists()]
    if clash:
        raise DataError(f"{clash[0]} exists: choose another --emit-toml (existing files are never "
                        "overwritten)")
    written = []
    for p, ((seed, methods, ds, pet), xs) in zip(names, grids.items()):
        new = {k: v for k, v in doc.items() if k != "models"}
        s = dict(sw)
        s["name"] = f"{sw.get('name', base_path.stem)}-suggest"
        s["out"] = str(out_dir if out_dir.is_absolute() else (base_dir / out_dir).resolve())
        s["checkpoint_dir"] = str(ckpt if ckpt.is_absolute() else (base_dir / ckpt).resolve())
        s["methods"] = list(methods)
        s["finetune_examples"] = list(ds)
        s["seeds"] = [seed]
        if pet is not None:
            for m in methods:
                s["prompt_lengths" if m == "prompt" else "lora_ranks"] = [pet]
        # the same pool of training examples as the base sweep (a run's data subset depends on it)
        s["train_pool"] = max(int(sw.get("train_pool", max(sw.get("finetune_examples", [100])))),
                              max(ds))
        new["sweep"] = s
        new["models"] = {"configs": [models[x] for x in sorted(xs)]}
        order = ["sweep", "models"] + [k for k in new if k not in ("sweep", "models")]
        text = _toml({k: new[k] for k in order},
                     f"# next batch from `lawfit suggest` ({len(xs) * len(methods) * len(ds)} "
                     f"runs); settings copied from {base_path}")
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "x") as fh:           # never overwrite
            fh.write(text)
        written.append(p)
    return written


# --- registration ----------------------------------------------------------------------------

def register(subparsers) -> None:
    """Add ``lawfit suggest`` to ``subparsers``."""
    add_command(subparsers, "suggest", "which runs to launch next to narrow an interval the most per unit cost",
                _add, cmd_suggest)

"""The sweep file's schema: every table and key of a sweep TOML, its type, range and default.

Validated completely (pydantic v2, strict types: `steps = "20"` is refused, not converted) before
anything runs; `validate(doc, path)` returns a `SweepFile` or raises `SweepError` with one line that
names the key, e.g. ``sweep.toml: pretrain.steps: expected an integer (got 'twenty')``. Rules that
need the devices (batch sizes divisible by the device count) are checked by the plan
(runners/sweep/plan.py),
which knows them. No jax import.
"""
from __future__ import annotations

import os
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ..config import DEFAULT_LR, METHODS, FinetuneConfig, PretrainConfig
from ..device import DEVICES, DTYPES

__all__ = ["DTYPE_ALIASES", "TABLES", "Eval", "Finetune", "Ladder", "Local", "ModelEntry", "Models", "Pretrain",
           "Slurm", "Sweep", "SweepError", "SweepFile", "validate"]

DTYPE_ALIASES = {"bf16": "bfloat16", "fp32": "float32", "f32": "float32"}
_PRE, _FT = PretrainConfig(), FinetuneConfig()  # the defaults of [pretrain] and [finetune]


class SweepError(ValueError):
    """Bad sweep file or input: reported as one line, exit status 2."""


def _dtype(v):
    if isinstance(v, str):
        v = DTYPE_ALIASES.get(v.strip().lower(), v.strip().lower())
        if v not in DTYPES:
            raise ValueError(f"expected one of {', '.join(DTYPES)} (or bf16, fp32)")
    return v


def _unique_sorted(xs: list) -> list:
    return sorted(set(xs))


PosInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]
PosFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
Dtype = Annotated[Literal[DTYPES], BeforeValidator(_dtype)]
PosInts = Annotated[list[PosInt], Field(min_length=1), AfterValidator(_unique_sorted)]


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _task(v):
    if isinstance(v, str) and v:
        return v
    if isinstance(v, dict) and isinstance(v.get("name"), str):
        return v
    raise ValueError("expected a task name or a table with a `name` key")


class Sweep(_Table):
    """[sweep]: the grid (task, methods, data sizes, seeds, PET sizes), output and devices."""
    name: str | None = None
    out: str | None = None
    checkpoint_dir: str | None = None
    task: Any = "synth_translate"
    zero_shot_task: Any = None  # absent: the task's companion; "" or false: none
    methods: Annotated[list[Literal[METHODS]], Field(min_length=1)] = list(METHODS)
    finetune_examples: PosInts = [100]
    seeds: Annotated[list[NonNegInt], Field(min_length=1), AfterValidator(_unique_sorted)] = [0]
    prompt_lengths: PosInts = [8]
    lora_ranks: PosInts = [4]
    train_pool: PosInt | None = None
    device: Literal[DEVICES] = "auto"

    @field_validator("task")
    @classmethod
    def check_task(cls, v: Any) -> Any:
        return _task(v)

    @field_validator("zero_shot_task")
    @classmethod
    def check_zero_shot_task(cls, v: Any) -> Any:
        return v if v is None or v == "" or v is False else _task(v)

    @field_validator("methods")
    @classmethod
    def check_methods(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("lists a method twice")
        return v

    @model_validator(mode="after")
    def check_pool(self) -> Sweep:
        if self.train_pool is not None and self.train_pool < max(self.finetune_examples):
            raise ValueError(f"train_pool: {self.train_pool} is smaller than the largest finetune_examples "
                             f"({max(self.finetune_examples)})")
        return self


class Ladder(_Table):
    """[models] ladder: `n` sizes whose parameter counts grow by `ratio` (runners/config.py `ladder`)."""
    n: PosInt = 2
    d_min: PosInt = 16
    ratio: Annotated[float, Field(gt=1)] = 2.0
    n_layers: PosInt = 2
    head_dim: PosInt = 8
    d_step: PosInt = 8


class ModelEntry(_Table):
    """One model of [models] configs."""
    d_model: PosInt
    n_layers: PosInt = 2
    n_heads: PosInt = 2
    d_ff: PosInt | None = None
    rope_base: PosFloat = 10000.0
    name: str = ""


class Models(_Table):
    """[models]: a ladder or a list of configs (not both)."""
    ladder: Ladder | None = None
    configs: Annotated[list[ModelEntry], Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def check_one(self) -> Models:
        if self.ladder is not None and self.configs is not None:
            raise ValueError("configs: give either ladder or configs, not both")
        return self


class Pretrain(_Table):
    """[pretrain]: the pretraining hyperparameters and kept checkpoints (defaults: runners/config.py)."""
    steps: PosInt = _PRE.steps
    batch_size: PosInt = _PRE.batch_size
    seq_len: PosInt = _PRE.seq_len
    lr: PosFloat = _PRE.lr
    warmup: NonNegInt = _PRE.warmup
    weight_decay: NonNegFloat = _PRE.weight_decay
    checkpoints: PosInts | None = None  # default: [steps]
    seed: NonNegInt = _PRE.seed
    dtype: Dtype = _PRE.dtype

    @model_validator(mode="after")
    def check_checkpoints(self) -> Pretrain:
        if self.checkpoints and max(self.checkpoints) > self.steps:
            raise ValueError(f"checkpoints: {self.checkpoints} go beyond pretrain.steps = {self.steps}")
        return self


class Finetune(_Table):
    """[finetune]: the finetuning hyperparameters (defaults: runners/config.py)."""
    steps: PosInt = _FT.steps
    batch_size: PosInt = _FT.batch_size
    lr: Any = None  # a positive number, or a table per method; default DEFAULT_LR
    warmup: NonNegInt = _FT.warmup
    weight_decay: NonNegFloat = _FT.weight_decay
    eval_every: PosInt = _FT.eval_every
    dev_examples: PosInt = _FT.dev_examples
    lora_alpha: PosFloat | None = _FT.lora_alpha
    dtype: Dtype = _FT.dtype

    @field_validator("lr")
    @classmethod
    def check_lr(cls, v: Any) -> Any:
        def pos(x):
            return isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0
        if v is None or pos(v):
            return v
        if isinstance(v, dict):
            bad = set(v) - set(METHODS)
            if bad:
                raise ValueError(f"unknown method(s) {sorted(bad)} (known: {', '.join(METHODS)})")
            if all(pos(x) for x in v.values()):
                return v
        raise ValueError(f"expected a positive number or a table per method (got {v!r})")

    def lrs(self) -> dict:
        """The learning rate of each method: `lr` for all, a table per method, or DEFAULT_LR."""
        if self.lr is None:
            return dict(DEFAULT_LR)
        if isinstance(self.lr, dict):
            return {**DEFAULT_LR, **{k: float(x) for k, x in self.lr.items()}}
        return {m: float(self.lr) for m in METHODS}


class Eval(_Table):
    """[eval]: test examples, decoded examples (BLEU / chrF), evaluation batch."""
    test_examples: PosInt = 256
    decode_examples: NonNegInt = 32
    batch_size: PosInt = _FT.eval_batch_size  # evaluation batch (rows per eval step; must divide by the devices)


class Local(_Table):
    """[local]: the local executor's workers."""
    jobs: PosInt = 1
    threads_per_job: PosInt | None = None
    gpus_per_job: PosInt = 1
    memory_fraction: Annotated[float, Field(gt=0, le=1)] = 0.9


class Slurm(_Table):
    """[slurm]: the SLURM executor's jobs (submitit parameters)."""
    partition: str | None = None
    gpus_per_node: NonNegInt = 1
    cpus_per_task: PosInt = 4
    timeout_min: PosInt = 120
    runs_per_job: PosInt = 8
    mem_gb: PosFloat = 32
    array_parallelism: PosInt = 64
    additional_parameters: dict[str, str | int | float | bool] = {}


class SweepFile(_Table):
    """A whole sweep file."""
    sweep: Sweep
    models: Models = Models()
    pretrain: Pretrain = Pretrain()
    finetune: Finetune = Finetune()
    eval: Eval = Eval()
    local: Local = Local()
    slurm: Slurm = Slurm()

    @model_validator(mode="before")
    @classmethod
    def check_not_empty(cls, doc: Any) -> Any:
        if isinstance(doc, dict) and not doc:
            raise ValueError("the sweep file is empty: a sweep needs at least a [sweep] table (see README)")
        return doc


TABLES = tuple(SweepFile.model_fields)


_BRANCHES = {"str", "int", "float", "bool"}  # union members pydantic names in an error's location


def _key(loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (("." if out else "") + str(part))
    return out


def _table_class(loc):
    """The pydantic class of the table at `loc` (list indices skipped)."""
    import typing
    cls = SweepFile
    for part in loc:
        if isinstance(part, int):
            continue
        ann, todo = cls.model_fields[part].annotation, []
        todo.append(ann)
        cls = None
        while todo:
            a = todo.pop()
            if isinstance(a, type) and issubclass(a, BaseModel):
                cls = a
                break
            todo.extend(typing.get_args(a))
        if cls is None:
            return None
    return cls


def _message(err: dict) -> tuple[str, str]:
    loc, typ, inp = list(err["loc"]), err["type"], err.get("input")
    while len(loc) > 1 and isinstance(loc[-1], str) and loc[-1] in _BRANCHES:
        loc.pop()
    key = _key(loc)
    if typ == "extra_forbidden":
        if len(loc) == 1:
            return key, f"unknown table [{loc[0]}] (known: {', '.join(TABLES)})"
        cls = _table_class(loc[:-1])
        known = sorted(cls.model_fields) if cls else []
        return key, f"unknown key {key} (known there: {', '.join(known)})"
    if typ == "missing":
        return key, (f"missing table [{key}]" if len(loc) == 1 else f"{key}: required")
    msg = err["msg"].removeprefix("Value error, ")
    if typ == "value_error" and ": " in msg and msg.split(": ", 1)[0].isidentifier():
        field, msg = msg.split(": ", 1)  # a cross-field rule names its key first
        key = f"{key}.{field}" if key else field
        return key, f"{key}: {msg}"
    msg = {"int_type": "expected an integer", "int_parsing": "expected an integer",
           "float_type": "expected a number", "float_parsing": "expected a number",
           "string_type": "expected a string", "list_type": "expected a list",
           "model_type": "expected a table", "dict_type": "expected a table",
           "bool_type": "expected true or false"}.get(typ, msg)
    msg = msg.replace("Input should be ", "must be ")
    if not loc:
        return key, msg
    shown = "" if typ in ("value_error", "assertion_error") or isinstance(inp, dict) else f" (got {inp!r})"
    return key, f"{key}: {msg}{shown}"


def validate(doc: dict, path: str | os.PathLike) -> SweepFile:
    """Validate a parsed sweep file.

    Parameters
    ----------
    doc
        The parsed TOML.
    path
        The file, named in messages.

    Returns
    -------
    SweepFile
        The validated file, defaults filled in; raises SweepError naming the first bad key(s).
    """
    try:
        return SweepFile.model_validate(doc)
    except ValidationError as e:
        first: dict[str, str] = {}
        for x in e.errors(include_url=False):  # one message per key (a union reports each member)
            k, m = _message(x)
            first.setdefault(k, m)
        msgs = list(first.values())
        more = f" (and {len(msgs) - 3} more)" if len(msgs) > 3 else ""
        raise SweepError(f"{path}: " + "; ".join(msgs[:3]) + more) from None

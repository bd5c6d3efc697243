"""Configurations of the runners' jobs, in one place: the finetuning methods and their default
learning rates, the model (with closed-form parameter counts and the size ladder), and the
pretraining and finetuning hyperparameters with their defaults. The sweep file's schema
(runners/sweep/schema.py) takes its defaults from here. No jax import: the sweep driver uses it.
"""
from __future__ import annotations

import dataclasses
import math

__all__ = ["DEFAULT_LR", "METHODS", "FinetuneConfig", "ModelConfig", "PretrainConfig", "adapter_param_count",
           "ladder", "param_count"]

METHODS = ("fmt", "prompt", "lora")
# Per-method default learning rates (Adam). PET methods train few, freshly initialised
# parameters and take larger steps than full-model tuning, as in the literature
# (prompt tuning: ~0.3 with Adafactor in Lester et al.; LoRA: ~1e-4..1e-3 at scale vs FMT lower).
DEFAULT_LR = {"fmt": 1e-3, "prompt": 3e-2, "lora": 3e-3}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """A decoder-only Transformer's shape (runners/model.py); `d_ff` None is 4 * d_model."""
    vocab_size: int
    d_model: int = 32
    n_layers: int = 2
    n_heads: int = 2
    d_ff: int | None = None  # default 4 * d_model
    rope_base: float = 10000.0
    name: str = ""

    @property
    def ff(self) -> int:
        """The MLP width."""
        return self.d_ff if self.d_ff is not None else 4 * self.d_model

    def __post_init__(self):
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        if (self.d_model // self.n_heads) % 2:
            raise ValueError("head dimension must be even for rotary embeddings")

    def to_dict(self) -> dict:
        """The fields as a dict, `d_ff` resolved (what a run's configuration records)."""
        d = dataclasses.asdict(self)
        d["d_ff"] = self.ff
        return d


def param_count(cfg: ModelConfig) -> int:
    """Base-model parameters (tied embedding counted once), closed form.

    embedding V*d; per layer: 2 RMSNorm scales (2d), q,k,v,o (4 d^2), MLP up+down (2 d ff);
    final RMSNorm (d).

    Parameters
    ----------
    cfg
        The model.

    Returns
    -------
    int
        The parameter count (the runs table's `model_params`).
    """
    d, f = cfg.d_model, cfg.ff
    return cfg.vocab_size * d + cfg.n_layers * (4 * d * d + 2 * d * f + 2 * d) + d


def adapter_param_count(cfg: ModelConfig, method: str, pet_size: int | None) -> int:
    """Trainable parameters added by a PET method.

    Parameters
    ----------
    cfg
        The model.
    method
        "fmt", "prompt" or "lora".
    pet_size
        The prompt length or the LoRA rank (ignored for fmt).

    Returns
    -------
    int
        The adapter's parameters (0 for fmt).
    """
    if method == "lora":
        d, f, r = cfg.d_model, cfg.ff, pet_size
        per_layer = 4 * (d * r + r * d) + (d * r + r * f) + (f * r + r * d)
        return cfg.n_layers * per_layer
    if method == "prompt":
        return pet_size * cfg.d_model
    return 0


def ladder(vocab_size: int, n: int, *, d_min: int = 16, ratio: float = 2.0, n_layers: int = 2,
           head_dim: int = 8, d_step: int = 8) -> list[ModelConfig]:
    """`n` configs whose base parameter counts grow geometrically by about `ratio`.

    Depth is fixed and width is searched (in multiples of `d_step`) for the count closest, in log
    space, to d_min's count times ratio^i, like the paper's 1B..16B family (each ~2x the previous).

    Parameters
    ----------
    vocab_size
        The task's vocabulary size.
    n
        How many sizes.
    d_min, ratio, n_layers, head_dim, d_step
        The smallest width, the growth factor of the parameter count, the fixed depth, the head
        dimension (heads = d_model / head_dim) and the width step.

    Returns
    -------
    list of ModelConfig
        The ladder, smallest first, named `L<layers>-d<width>`.
    """
    base = ModelConfig(vocab_size, d_min, n_layers, max(1, d_min // head_dim))
    target0 = param_count(base)
    out, used = [], set()
    for i in range(n):
        target = target0 * ratio ** i
        best = None
        for d in range(d_step, 64 * d_min + 1, d_step):
            if d in used or d % head_dim:
                continue
            c = ModelConfig(vocab_size, d, n_layers, d // head_dim)
            err = abs(math.log(param_count(c) / target))
            if best is None or err < best[0]:
                best = (err, c)
        used.add(best[1].d_model)
        out.append(dataclasses.replace(best[1], name=f"L{n_layers}-d{best[1].d_model}"))
    return out


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    """Pretraining hyperparameters (runners/pretrain.py); `checkpoints` are the steps kept."""
    steps: int = 1000
    batch_size: int = 32
    seq_len: int = 64
    lr: float = 3e-3
    warmup: int = 50
    weight_decay: float = 0.01
    checkpoints: tuple[int, ...] = ()  # steps to keep; the last step is always kept
    seed: int = 0
    dtype: str = "auto"

    def ckpt_steps(self) -> list[int]:
        """The steps whose checkpoints are kept, sorted (the last step always)."""
        return sorted({int(s) for s in self.checkpoints if 0 < s <= self.steps} | {self.steps})


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    """Finetuning hyperparameters (runners/finetune.py); `lr` None takes DEFAULT_LR[method]."""
    steps: int = 300
    batch_size: int = 16
    lr: float | None = None  # None: DEFAULT_LR[method]
    warmup: int = 20
    weight_decay: float = 0.0
    eval_every: int = 50
    dev_examples: int = 128
    lora_alpha: float | None = None  # None: alpha = rank (scale 1)
    dtype: str = "auto"
    eval_batch_size: int = 64  # rows per dev-loss step (a multiple of the device count)

    def lr_for(self, method: str) -> float:
        """The learning rate of `method`: `lr` if set, else DEFAULT_LR[method]."""
        return self.lr if self.lr is not None else DEFAULT_LR[method]

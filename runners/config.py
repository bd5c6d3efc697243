"""Model configurations and closed-form parameter counts (no jax import: the sweep driver uses it)."""
from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    d_model: int = 32
    n_layers: int = 2
    n_heads: int = 2
    d_ff: int | None = None  # default 4 * d_model
    rope_base: float = 10000.0
    name: str = ""

    @property
    def ff(self) -> int:
        return self.d_ff if self.d_ff is not None else 4 * self.d_model

    def __post_init__(self):
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        if (self.d_model // self.n_heads) % 2:
            raise ValueError("head dimension must be even for rotary embeddings")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["d_ff"] = self.ff
        return d


def param_count(cfg: ModelConfig) -> int:
    """Base-model parameters (tied embedding counted once), closed form.

    embedding V*d; per layer: 2 RMSNorm scales (2d), q,k,v,o (4 d^2), MLP up+down (2 d ff);
    final RMSNorm (d).
    """
    d, f = cfg.d_model, cfg.ff
    return cfg.vocab_size * d + cfg.n_layers * (4 * d * d + 2 * d * f + 2 * d) + d


def adapter_param_count(cfg: ModelConfig, method: str, pet_size: int | None) -> int:
    """Trainable parameters added by a PET method (0 for fmt)."""
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

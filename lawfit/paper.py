"""Published numbers of Zhang, Liu, Cherry, Firat (2024), "When Scaling Meets LLM Finetuning: The
Effect of Data, Model and Finetuning Method", ICLR 2024 (arXiv 2402.17193).

Table 1b (the experimental grid), Table 2 (held-out errors) and Table 4 (fitted parameters of the
multiplicative law, about two significant figures) are facts the simulator and the notebooks build
on. Units: model size = parameter count,
pretraining data = tokens, finetuning data = examples, loss = test log-perplexity (nats).
"""
from __future__ import annotations

CITATION = ("Zhang, B., Liu, Z., Cherry, C., Firat, O. (2024). When Scaling Meets LLM Finetuning: "
            "The Effect of Data, Model and Finetuning Method. ICLR 2024. arXiv:2402.17193")

TASKS = ("wmt14_en_de", "wmt19_en_zh", "mlsum")
METHODS = ("fmt", "prompt", "lora")

# Table 4: per task x method, (A, alpha) per factor -- m: model size, p: pretraining data,
# t: PET parameter size -- with E and beta shared by the factors.
TABLE4 = {
    ("wmt14_en_de", "fmt"):    dict(A_m=1.2e5, alpha_m=0.52, A_p=6.3e2, alpha_p=0.21, E=0.75, beta=0.15),
    ("wmt14_en_de", "prompt"): dict(A_m=3.9e3, alpha_m=0.4, A_p=2.7e2, alpha_p=0.21, A_t=1.0, alpha_t=0.0027, E=0.62, beta=0.051),
    ("wmt14_en_de", "lora"):   dict(A_m=2.1e3, alpha_m=0.36, A_p=1.4e2, alpha_p=0.18, A_t=1.4, alpha_t=-0.0017, E=0.62, beta=0.081),
    ("wmt19_en_zh", "fmt"):    dict(A_m=3.3e3, alpha_m=0.34, A_p=2.4e2, alpha_p=0.17, E=1.0, beta=0.14),
    ("wmt19_en_zh", "prompt"): dict(A_m=8.5e2, alpha_m=0.33, A_p=2e2, alpha_p=0.2, A_t=1.0, alpha_t=0.0019, E=0.77, beta=0.015),
    ("wmt19_en_zh", "lora"):   dict(A_m=6.6e2, alpha_m=0.31, A_p=1.3e2, alpha_p=0.18, A_t=1.2, alpha_t=0.0044, E=0.73, beta=0.025),
    ("mlsum", "fmt"):          dict(A_m=3.3e2, alpha_m=0.24, A_p=42, alpha_p=0.11, E=0.98, beta=0.087),
    ("mlsum", "prompt"):       dict(A_m=23, alpha_m=0.1, A_p=16, alpha_p=0.069, A_t=2.6, alpha_t=0.0026, E=0.00051, beta=0.025),
    ("mlsum", "lora"):         dict(A_m=26, alpha_m=0.11, A_p=17, alpha_p=0.073, A_t=2.4, alpha_t=0.00022, E=0.2, beta=0.03),
}

# Table 1b: the grid of every factor (and, in HELD_OUT, the value the paper held out).
MODEL_SIZES = (1e9, 2e9, 4e9, 8e9, 16e9)
PRETRAIN_TOKENS = {"wmt14_en_de": (84e9, 126e9, 167e9, 209e9, 283e9),     # En-De LLM (1B)
                   "mlsum": (84e9, 126e9, 167e9, 209e9, 283e9),           # MLSum uses the En-De LLM
                   "wmt19_en_zh": (84e9, 105e9, 126e9, 147e9, 167e9, 206e9)}  # En-Zh LLM (1B)
PROMPT_LENGTHS = (50, 100, 150, 200, 300, 400, 600)
LORA_RANKS = (4, 8, 16, 32, 48, 64, 128)
FINETUNE_EXAMPLES = {
    ("wmt14_en_de", "fmt"): (1e5, 5e5, 1e6, 1.5e6, 2e6, 2.5e6, 3e6, 3.5e6, 4e6, 4.5e6),
    ("wmt19_en_zh", "fmt"): (1e6, 2e6, 3e6, 4e6, 5e6, 1e7, 1.5e7, 2e7, 2.5e7),
    ("mlsum", "fmt"): (1e5, 2e5, 3e5, 4e5, 5e5, 6e5, 7e5, 8e5, 9e5),
    "pet": (8e3, 1e4, 2e4, 3e4, 4e4, 5e4, 6e4, 7e4, 8e4, 9e4, 1e5),
}
HELD_OUT = {"model_params": 16e9, "pretrain_tokens": {"wmt14_en_de": 209e9, "mlsum": 209e9,
                                                      "wmt19_en_zh": 167e9},
            "prompt_length": 600, "lora_rank": 128,
            "finetune_examples": {("wmt14_en_de", "fmt"): 4.5e6, ("wmt19_en_zh", "fmt"): 2.5e7,
                                  ("mlsum", "fmt"): 9e5, "pet": 1e5}}

# Not in Table 1b: the PET size used in the model-size and pretraining-size series. The simulator
# assumes a prompt length of 100 and LoRA rank 4 (our reading of the paper's setup, not a
# published number); say so wherever it matters.
DEFAULT_PET = {"prompt": 100, "lora": 4}


def finetune_sizes(task: str, method: str) -> tuple:
    return FINETUNE_EXAMPLES[(task, "fmt")] if method == "fmt" else FINETUNE_EXAMPLES["pet"]


def pet_sizes(method: str) -> tuple:
    return {"prompt": PROMPT_LENGTHS, "lora": LORA_RANKS}.get(method, ())


def law_params(task: str, method: str, factor: str) -> dict:
    """Multiplicative-law parameters (A, E, alpha, beta) of Table 4 for one factor
    (``model_params``, ``pretrain_tokens`` or ``pet_params``)."""
    t = TABLE4[(task, method)]
    s = {"model_params": "m", "pretrain_tokens": "p", "pet_params": "t"}[factor]
    return {"A": t[f"A_{s}"], "E": t["E"], "alpha": t[f"alpha_{s}"], "beta": t["beta"]}

# Table 2 (and Table 6): held-out mean absolute deviation Delta_h of the multiplicative and additive
# laws, per task x factor (the column that varies) x law, per method.
TABLE2 = {
    ("wmt14_en_de", "model_params", "multiplicative"): {"fmt": 0.0052, "prompt": 0.0043, "lora": 0.0047},
    ("wmt14_en_de", "pretrain_tokens", "multiplicative"): {"fmt": 0.0057, "prompt": 0.0061, "lora": 0.0084},
    ("wmt14_en_de", "pet_params", "multiplicative"): {"prompt": 0.005, "lora": 0.0031},
    ("wmt14_en_de", "model_params", "additive"): {"fmt": 0.012, "prompt": 0.0076, "lora": 0.0045},
    ("wmt14_en_de", "pretrain_tokens", "additive"): {"fmt": 0.0048, "prompt": 0.0075, "lora": 0.0082},
    ("wmt14_en_de", "pet_params", "additive"): {"prompt": 0.0069, "lora": 0.0032},
    ("wmt19_en_zh", "model_params", "multiplicative"): {"fmt": 0.0075, "prompt": 0.019, "lora": 0.026},
    ("wmt19_en_zh", "pretrain_tokens", "multiplicative"): {"fmt": 0.002, "prompt": 0.0071, "lora": 0.0056},
    ("wmt19_en_zh", "pet_params", "multiplicative"): {"prompt": 0.0075, "lora": 0.0051},
    ("wmt19_en_zh", "model_params", "additive"): {"fmt": 0.021, "prompt": 0.018, "lora": 0.029},
    ("wmt19_en_zh", "pretrain_tokens", "additive"): {"fmt": 0.0026, "prompt": 0.0069, "lora": 0.0058},
    ("wmt19_en_zh", "pet_params", "additive"): {"prompt": 0.0076, "lora": 0.0044},
    ("mlsum", "model_params", "multiplicative"): {"fmt": 0.0066, "prompt": 0.013, "lora": 0.022},
    ("mlsum", "pretrain_tokens", "multiplicative"): {"fmt": 0.009, "prompt": 0.0083, "lora": 0.0039},
    ("mlsum", "pet_params", "multiplicative"): {"prompt": 0.0081, "lora": 0.003},
    ("mlsum", "model_params", "additive"): {"fmt": 0.0072, "prompt": 0.015, "lora": 0.017},
    ("mlsum", "pretrain_tokens", "additive"): {"fmt": 0.0062, "prompt": 0.0046, "lora": 0.0043},
    ("mlsum", "pet_params", "additive"): {"prompt": 0.0053, "lora": 0.0027},
}

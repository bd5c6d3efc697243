"""Data that the law describes exactly (no noise): the fit recovers the parameters and says it
converged (the convergence test must not demand a decrease relative to an objective of 0)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import lawfit


@pytest.mark.parametrize("objective", ["huber", "huber-log"])
def test_noiseless_data_converge_to_the_truth(objective):
    d = np.array([1e3, 3e3, 1e4, 3e4, 1e5, 3e5])
    x = np.array([1e8, 1e9, 1e10])
    truth = {"A": 2.0, "alpha": 0.1, "beta": 0.2, "E": 1.5}
    rows = [{"model_params": xi, "finetune_examples": di,
             "loss": truth["A"] * xi ** -truth["alpha"] * di ** -truth["beta"] + truth["E"]}
            for xi in x for di in d]
    res = lawfit.fit(pd.DataFrame(rows), "multiplicative", objective=objective)
    g = res.groups[0]
    assert g.status == "converged", g.warnings
    for k, v in truth.items():
        assert g.params[k] == pytest.approx(v, rel=1e-7)

"""The README's examples run as written."""
import re

import pandas as pd

from conftest import ROOT, require_reference, run_cli

README = (ROOT / "README.md").read_text()


def test_python_api_example_runs(monkeypatch):
    block = re.search(r"```python\n(.*?)```", README, re.S).group(1)
    monkeypatch.chdir(ROOT)
    scope = {}
    exec(compile(block, "README.md", "exec"), scope)
    fit = scope["fit"]
    params = fit.params.set_index("param")
    # the simulated truth (Table 4, En-De LoRA, model size): alpha 0.36, beta 0.081
    assert abs(params.loc["alpha", "estimate"] - 0.36) < 0.05
    assert params.loc["alpha", "lo"] < 0.36 < params.loc["alpha", "hi"]
    pred = fit.predict({"model_params": [16e9], "finetune_examples": [1e6]})
    assert bool(pred["extrapolated"].iloc[0]) and pred["lo"].iloc[0] < pred["hi"].iloc[0]


def test_zero_size_error_example_is_what_the_cli_prints():
    path = require_reference("lin2024", "lin2024_wmt19.csv")
    shown = re.search(r"\$ lawfit fit \.\./shared/data/lin2024/lin2024_wmt19\.csv --by family\n(.*?)\n",
                      README).group(1)
    proc = run_cli("fit", path, "--by", "family")
    assert proc.returncode == 2
    assert proc.stderr.strip() == shown


def test_bundled_table_matches_its_documented_regeneration(tmp_path):
    out = tmp_path / "regen.csv"
    proc = run_cli("simulate", "--paper", "zhang2024", "--noise", "0.005", "--seeds", "3",
                   "--seed", "0", "--out", out)
    assert proc.returncode == 0, proc.stderr
    pd.testing.assert_frame_equal(pd.read_csv(out), pd.read_csv(ROOT / "data" / "zhang2024_simulated.csv"))

"""The README's examples run as written."""
import re
import shlex

import pandas as pd
import pytest
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


@pytest.mark.slow
def test_bundled_table_matches_its_documented_regeneration(tmp_path):
    out = tmp_path / "regen.csv"
    proc = run_cli("simulate", "--paper", "zhang2024", "--noise", "0.005", "--seeds", "3",
                   "--seed", "0", "--out", out)
    assert proc.returncode == 0, proc.stderr
    pd.testing.assert_frame_equal(pd.read_csv(out), pd.read_csv(ROOT / "data" / "zhang2024_simulated.csv"))


def _tour_line(prefix: str) -> str:
    line = re.search(rf"^\$ ({re.escape(prefix)}[^\n]*)$", README, re.M).group(1)
    return line


@pytest.mark.slow
def test_tour_fit_then_predict_lines_run_as_written(tmp_path):
    """The tour's `lawfit fit` (the first command's fit) and `lawfit predict` lines, verbatim, in
    a directory where data/ is the bundled one."""
    (tmp_path / "data").symlink_to(ROOT / "data")
    for prefix in ("lawfit fit data/zhang2024_simulated.csv --recipe zhang2024",
                   "lawfit predict out/zhang2024"):
        args = shlex.split(_tour_line(prefix))[1:]
        proc = run_cli(*args, cwd=tmp_path)
        assert proc.returncode == 0, (args, proc.stderr)
    shown = README.split("$ " + _tour_line("lawfit predict out/zhang2024"))[1].split("```")[0]
    assert proc.stdout.strip() == shown.strip()
    fit_out = run_cli("plot", tmp_path / "out" / "zhang2024", "--format", "png", cwd=tmp_path)
    assert fit_out.returncode == 0, fit_out.stderr


@pytest.mark.slow
def test_bayesian_example_runs(monkeypatch):
    block = re.findall(r"```python\n(.*?)```", README, re.S)[1]
    assert 'fitter="bayes"' in block
    monkeypatch.chdir(ROOT)
    scope = {}
    exec(compile(block.replace('"warmup": 1000, "draws": 1000', '"warmup": 500, "draws": 500'),
                 "README.md", "exec"), scope)
    pred = scope["res"].predict({"model_params": [7e10], "pretrain_tokens": [1.4e12]})
    assert pred["interval"].iloc[0] == "new-run"
    assert pred["lo"].iloc[0] < pred["prediction"].iloc[0] < pred["hi"].iloc[0]


@pytest.mark.slow
def test_optimal_example_runs_as_written(tmp_path):
    (tmp_path / "data").symlink_to(ROOT / "data")
    for prefix in ("lawfit fit data/epoch2024_chinchilla.csv", "lawfit optimal out/epoch"):
        args = shlex.split(_tour_line(prefix))[1:]
        proc = run_cli(*args, cwd=tmp_path)
        assert proc.returncode == 0, (args, proc.stderr)
    shown = README.split("$ " + _tour_line("lawfit optimal out/epoch"))[1].split("```")[0]
    assert proc.stdout.strip() == shown.strip()

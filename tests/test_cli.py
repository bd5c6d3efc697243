"""The command line: end to end on real runs, the artefact, and every kind of bad input."""
import json

import numpy as np
import pandas as pd
import pytest
from conftest import require_reference, run_cli

from lawfit.cli.main import main
from lawfit.simulate import simulate


@pytest.fixture
def runs(tmp_path):
    df = simulate("multiplicative", dict(A=2e3, E=0.6, alpha=0.35, beta=0.08),
                  {"model_params": [1e9, 2e9, 4e9, 8e9], "finetune_examples": np.geomspace(1e4, 1e5, 5)},
                  noise=0.003, seeds=2, extra={"task": "demo", "method": "lora"})
    path = tmp_path / "runs.csv"
    df.to_csv(path, index=False)
    return path


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_lin2024_family_fits_end_to_end_from_the_command_line(tmp_path):
    """Real runs (Lin et al. 2024): zero-size rows excluded with --where, one family per group."""
    path = require_reference("lin2024", "lin2024_wmt19.csv")
    out = tmp_path / "fit"
    proc = run_cli("fit", path, "--where", "finetune_examples > 0 and family in ['OPT', 'GPT2']",
                   "--by", "task,family", "--bootstrap", "50", "--out", out)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((out / "fit.json").read_text())
    assert doc["law"] == "multiplicative" and doc["objective"] == {
        "name": "huber", "delta": 0.001, "reduction": "sum"}
    assert doc["data"]["rows"] == 450 and len(doc["data"]["sha256"]) == 64
    assert [g["key"]["family"] for g in doc["groups"]] == ["GPT2", "OPT"]
    for g in doc["groups"]:
        assert g["n_points"] == len(pd.read_csv(path).query(
            f"finetune_examples > 0 and family == '{g['key']['family']}'"))
        assert set(g["params"]) == {"A", "E", "alpha", "beta"}
        assert g["status"] in ("converged", "at_bound", "grid_edge", "poor_fit")
        assert g["interval"]["method"] == "bootstrap" and g["interval"]["draws"] > 40
        assert 0 < g["params"]["beta"]["estimate"] < 1
    draws = pd.read_parquet(out / "draws.parquet")
    assert set(draws["family"]) == {"GPT2", "OPT"}
    assert "E" in proc.stdout and "alpha" in proc.stdout


def test_zero_size_rows_are_rejected_with_the_fix(capsys):
    path = require_reference("lin2024", "lin2024_gigaword.csv")
    code, out, err = cli(capsys, "fit", path, "--by", "family")
    assert code == 2
    assert "finetune_examples" in err and "where 'finetune_examples > 0'" in err
    assert len(err.strip().splitlines()) == 1


def test_fit_json_round_trip_and_predict(capsys, runs, tmp_path):
    out = tmp_path / "fit"
    code, stdout, _ = cli(capsys, "fit", runs, "--bootstrap", "100", "--seed", "3", "--out", out)
    assert code == 0
    doc = json.loads((out / "fit.json").read_text())
    assert doc["settings"]["seed"] == 3 and doc["lawfit_version"]
    (g,) = doc["groups"]
    assert g["key"] == {"task": "demo", "method": "lora"}
    assert g["n_points"] == 20
    assert abs(g["params"]["alpha"]["estimate"] - 0.35) < 0.05
    assert g["params"]["alpha"]["lo"] < g["params"]["alpha"]["estimate"] < g["params"]["alpha"]["hi"]
    code, stdout, err = cli(capsys, "predict", out, "--at", "model_params=4e9,finetune_examples=5e4",
                            "--at", "model_params=16e9,finetune_examples=5e4")
    assert code == 0
    lines = stdout.strip().splitlines()
    assert len(lines) == 3 and "extrapolated" in lines[0]
    assert lines[1].split()[-1] == "False" and lines[2].split()[-1] == "True"
    pred = float(lines[1].split()[2])
    truth = 2e3 * 4e9 ** -0.35 * 5e4 ** -0.08 + 0.6
    assert abs(pred - truth) < 0.01


def test_existing_fit_is_not_overwritten(capsys, runs, tmp_path):
    out = tmp_path / "fit"
    out.mkdir()
    (out / "fit.json").write_text("precious")
    code, _, err = cli(capsys, "fit", runs, "--out", out)
    assert code == 2 and "--overwrite" in err
    assert (out / "fit.json").read_text() == "precious"
    assert cli(capsys, "fit", runs, "--out", out, "--overwrite")[0] == 0
    assert json.loads((out / "fit.json").read_text())["law"] == "multiplicative"


def test_simulate_paper_grid(capsys, tmp_path):
    out = tmp_path / "paper.parquet"
    code, _, err = cli(capsys, "simulate", "--paper", "zhang2024", "--seeds", "1", "--out", out)
    assert code == 0
    df = pd.read_parquet(out)
    # per task: fmt 2 series x 5 sizes x |D|; prompt/lora 3 series (5 models, 5-6 ckpts, 7 PET) x 11
    n_d = {"wmt14_en_de": 10, "wmt19_en_zh": 9, "mlsum": 9}
    n_p = {"wmt14_en_de": 5, "wmt19_en_zh": 6, "mlsum": 5}
    expected = sum((5 + n_p[t]) * n_d[t] + 2 * (5 + n_p[t] + 7) * 11 for t in n_d)
    assert len(df) == expected
    assert set(df["factor"]) == {"model_params", "pretrain_tokens", "pet_params"}
    assert cli(capsys, "simulate", "--paper", "zhang2024", "--out", out)[0] == 2   # no overwrite


BAD = [
    (["--x", "model_param"], "missing column 'model_param': did you mean 'model_params'"),
    (["--law", "chinchila"], "unknown law 'chinchila': choose one of"),
    (["--objective", "l3"], "invalid choice"),
    (["--by", "nope"], "missing column 'nope'"),
    (["--where", "finetune_examples >"], "cannot parse expression"),
    (["--where", "finetune_examples < 0"], "leaves no rows"),
    (["--starts", "many"], "--starts must be"),
    (["--fix", "Q=1"], "unknown parameter"),
]


@pytest.mark.parametrize("extra,message", BAD)
def test_bad_options_exit_2_with_one_line(capsys, runs, extra, message):
    if extra[0] == "--objective":          # argparse's own check
        with pytest.raises(SystemExit) as exc:
            main(["fit", str(runs), *extra])
        assert exc.value.code == 2
        err = capsys.readouterr().err
    else:
        code, _, err = cli(capsys, "fit", runs, *extra)
        assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("mutate,message", [
    (lambda df: df.assign(loss=df["loss"].astype(object).where(df.index != 3, "oops")),
     "column 'loss' has non-numeric values (rows 3"),
    (lambda df: df.assign(loss=df["loss"].where(df.index != 5, np.nan)),
     "missing, NaN or infinite values in rows 5"),
    (lambda df: df.assign(model_params=df["model_params"].where(df.index != 7, np.inf)),
     "'model_params' has missing, NaN or infinite"),
    (lambda df: df.assign(model_params=df["model_params"].where(df.index != 2, -1)),
     "'model_params' must be positive but 1 rows are <= 0 (rows 2)"),
    (lambda df: df.drop(columns="finetune_examples"), "missing column 'finetune_examples'"),
    (lambda df: df.iloc[:6], "has 3 runs but the fit has 4 free parameters"),  # 2 seeds each
])
def test_bad_tables_exit_2_with_one_line(capsys, runs, tmp_path, mutate, message):
    bad = tmp_path / "bad.csv"
    mutate(pd.read_csv(runs)).to_csv(bad, index=False)
    code, _, err = cli(capsys, "fit", bad)
    assert code == 2, err
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_unreadable_files_exit_2(capsys, tmp_path):
    corrupt = tmp_path / "runs.parquet"
    corrupt.write_bytes(b"PAR1 this is not parquet")
    code, _, err = cli(capsys, "fit", corrupt)
    assert code == 2 and "cannot read" in err
    code, _, err = cli(capsys, "fit", tmp_path / "missing.csv")
    assert code == 2 and "no such file" in err
    empty_dir = tmp_path / "sweep"
    empty_dir.mkdir()
    code, _, err = cli(capsys, "fit", empty_dir)
    assert code == 2 and "no .parquet files" in err


def test_a_sweep_directory_with_a_corrupt_file_is_reported(capsys, runs, tmp_path):
    d = tmp_path / "sweep"
    d.mkdir()
    df = pd.read_csv(runs)
    for i, (rid, row) in enumerate(df.groupby("run_id")):
        row.to_parquet(d / f"{rid}-{i}.parquet")
    (d / ".inflight.parquet").write_bytes(b"partial")     # a run in flight: ignored
    assert cli(capsys, "fit", d)[0] == 0
    (d / "broken.parquet").write_bytes(b"partial")
    code, _, err = cli(capsys, "fit", d)
    assert code == 2 and "broken.parquet" in err


@pytest.mark.slow
def test_no_traceback_at_process_level(runs):
    proc = run_cli("fit", runs, "--x", "nope")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_python_m_lawfit_is_the_command(runs):
    import subprocess
    import sys

    import lawfit
    proc = subprocess.run([sys.executable, "-m", "lawfit", "--version"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == f"lawfit {lawfit.__version__}"
    proc = subprocess.run([sys.executable, "-m", "lawfit", "fit", str(runs), "--x", "nope"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "nope" in proc.stderr


def test_the_version_is_the_installed_distributions():
    import importlib.metadata

    import lawfit
    assert importlib.metadata.version("lawfit") == lawfit.__version__


def test_every_command_is_registered_once_from_the_module_table():
    from lawfit.cli.main import COMMAND_MODULES, build_parser
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    names = list(sub.choices)
    assert names == ["fit", "predict", "simulate", "run", "critical", "backtest", "plot",
                     "compare", "optimal", "suggest"]
    for module in COMMAND_MODULES:
        assert callable(module.register)


def test_the_lazy_api_gives_every_public_name_and_fit_is_the_function():
    """`import lawfit` is lazy; every name in __all__ resolves, and ``lawfit.fit`` stays the
    function even after the submodule lawfit/fit.py was imported by someone else."""
    import subprocess
    import sys
    code = ("import lawfit, lawfit.fit, inspect\n"
            "from lawfit.analysis.backtest import backtest\n"
            "assert inspect.isfunction(lawfit.fit), lawfit.fit\n"
            "for n in lawfit.__all__:\n"
            "    assert getattr(lawfit, n) is not None, n\n"
            "from lawfit import *\n"
            "assert inspect.isfunction(fit) and inspect.isfunction(suggest)\n"
            "assert set(lawfit.__all__) <= set(dir(lawfit))\n"
            "print('OK')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "OK", proc.stderr[-2000:]


def test_run_hands_the_sweep_to_the_runners_and_refuses_a_missing_file(capsys, tmp_path):
    """`lawfit run SWEEP` is the runners' command: a sweep file that is not there exits 2 with one
    line naming it, and nothing is created."""
    pytest.importorskip("runners")
    missing = tmp_path / "nothere.toml"
    code, _, err = cli(capsys, "run", missing)
    assert code == 2 and "not found" in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []

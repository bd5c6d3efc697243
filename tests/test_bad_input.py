"""Every bad input, of every option of every subcommand, at process level: exit status 2, exactly
one line on stderr naming the problem, no traceback, nothing the user had touched, and nothing
from an input ever run as code (a canary file that the injections try to create never appears).

The cases run as separate processes through tests/cli_runner.py (one import, a fork per case), in
one directory holding the inputs: a small runs table, one small fit made once, tampered copies of
it, a sweep's runs directory, corrupt files. The runner compares that directory's files (content
and permissions) before and after every case.
"""
import copy
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from lawfit.simulate import simulate

INJECT = "touch CANARY"
AT = "model_params=1e9,finetune_examples=1e4"
GOOD_PARAMS = "A=2e3,E=0.6,alpha=0.36,beta=0.08"
GRID = ["--grid", "model_params=1e9:2e9", "--grid", "finetune_examples=1e3:1e4"]

# (id, argv, a fragment the one-line message must contain)
CASES = [
    # --- the list -------------------------------------------------------------------
    ("fix-not-a-number", ["fit", "runs.csv", "--fix", "E=abc"], "--fix E: 'abc' is not a number"),
    ("fix-negative-scale", ["fit", "runs.csv", "--fix", "E=-1"], "E=-1 must be positive"),
    ("predict-at-not-a-number", ["predict", "fit", "--at", "model_params=abc,finetune_examples=1e4"],
     "--at model_params: 'abc' is not a number"),
    ("predict-level-1.5", ["predict", "fit", "--at", AT, "--level", "1.5"],
     "--level must lie strictly between 0 and 1"),
    ("draws-zero-bytes", ["predict", "fit-zero-draws", "--at", AT], "draws.parquet"),
    ("draws-missing", ["predict", "fit-no-draws", "--at", AT], "draws.parquet is missing"),
    ("simulate-params-not-a-number", ["simulate", "--params", "A=abc,E=0.6,alpha=0.3,beta=0.1",
                                      *GRID, "--out", "new.csv"], "--params A: 'abc'"),
    ("simulate-negative-param", ["simulate", "--params", "A=-1,E=0.6,alpha=0.3,beta=0.1", *GRID,
                                 "--out", "new.csv"], "A=-1 must be positive"),
    ("simulate-negative-grid", ["simulate", "--params", GOOD_PARAMS, "--grid",
                                "model_params=-1e9:2e9", "--grid", "finetune_examples=1e3",
                                "--out", "new.csv"], "must hold positive, finite sizes"),
    ("simulate-zero-grid", ["simulate", "--params", GOOD_PARAMS, "--grid", "model_params=1e9",
                            "--grid", "finetune_examples=0:1e3", "--out", "new.csv"],
     "must hold positive"),
    ("plot-empty-critical-json", ["plot", "critical-empty"], "not a valid critical.json"),
    ("plot-backtest-without-csv", ["plot", "backtest-no-csv"], "backtest_runs.csv is missing"),
    ("parquet-numbers-as-text", ["fit", "text.parquet"], "stores numbers as"),
    ("out-parent-is-a-file", ["fit", "runs.csv", "--out", "a-file/fit"], "a-file is a file"),
    ("out-is-a-file", ["fit", "runs.csv", "--out", "a-file"], "is not a directory"),
    ("out-read-only-new", ["fit", "runs.csv", "--out", "/sys/lawfit-test-out"], "cannot create"),
    ("out-read-only-existing", ["fit", "runs.csv", "--out", "/sys"], "cannot write into"),
    ("out-in-sweep-runs", ["fit", "runs.csv", "--out", "sweep"], "sweep's runs directory"),
    ("out-is-the-runs-dir", ["fit", "sweep", "--out", "sweep"], "the runs directory being read"),
    ("simulate-into-sweep-runs", ["simulate", "--paper", "zhang2024", "--out",
                                  "sweep/more.parquet"], "inside a sweep's runs directory"),
    ("critical-out-in-sweep", ["critical", "runs2.csv", "--between", "fmt,lora", "--out",
                               "sweep"], "sweep's runs directory"),
    ("backtest-out-in-sweep", ["backtest", "runs.csv", "--out", "sweep"], "sweep's runs directory"),
    ("compare-out-in-sweep", ["compare", "runs.csv", "--out", "sweep"], "sweep's runs directory"),
    # --- injection through --where: refused, nothing run ---------------------------------------
    ("where-at-escape", ["fit", "runs.csv", "--where", f"@pd.io.common.os.system('{INJECT}') == 0"],
     "'@' names are not allowed"),
    ("where-import", ["fit", "runs.csv", "--where", f"__import__('os').system('{INJECT}') == 0"],
     "attribute access"),
    ("where-dunder", ["fit", "runs.csv", "--where", "task.__class__.__mro__ == 1"],
     "attribute access"),
    ("where-lambda", ["fit", "runs.csv", "--where", "(lambda: __import__('os'))() == 1"],
     "'lambda' is not part of the grammar"),
    ("where-call", ["fit", "runs.csv", "--where", f"system('{INJECT}') == 0"], "calls are not"),
    ("where-import-statement", ["fit", "runs.csv", "--where", "import os"], "'import'"),
    ("where-index", ["fit", "runs.csv", "--where", "loss[0] > 1"], "indexing is not allowed"),
    ("where-semicolon", ["fit", "runs.csv", "--where", "loss > 1; import os"], "';'"),
    ("where-backtest", ["backtest", "runs.csv", "--where", f"@os.system('{INJECT}')"], "'@'"),
    ("where-critical", ["critical", "runs2.csv", "--between", "fmt,lora", "--where",
                        f"__import__('os').system('{INJECT}')"], "attribute access"),
    ("where-compare", ["compare", "runs.csv", "--where", "@x > 1"], "'@'"),
    # --- a tampered fit.json: refused by plot, predict and critical, nothing run ---------------
    *[(f"tampered-{name}-{cmd}", [cmd, f"t-{name}", *extra], fragment)
      for name, fragment in [("where-at", "'@' names are not allowed"),
                             ("where-import", "attribute access"),
                             ("where-lambda", "'lambda'"),
                             ("where-not-text", "settings.where is not text"),
                             ("tree-call", "unknown node type"),
                             ("tree-disagrees", "disagree"),
                             ("rows-bad", "bad row selection record")]
      for cmd, extra in [("plot", []), ("predict", ["--at", AT]),
                         ("critical", ["--between", "fmt,lora"])]],
    ("tampered-law-list", ["predict", "t-law-list", "--at", AT], "'law' is not a name"),
    ("tampered-law-unknown", ["predict", "t-law-unknown", "--at", AT], "unknown law"),
    ("tampered-estimate-text", ["plot", "t-estimate-text"], "finite estimate"),
    ("tampered-estimate-null", ["predict", "t-estimate-null", "--at", AT], "finite estimate"),
    ("tampered-status", ["plot", "t-status"], "unknown status"),
    ("tampered-ranges", ["predict", "t-ranges", "--at", AT], "'ranges'"),
    ("tampered-level", ["predict", "t-level", "--at", AT], "'interval'"),
    ("tampered-groups", ["critical", "t-groups", "--between", "fmt,lora"], "'groups'"),
    ("tampered-draw-count", ["predict", "t-draw-count", "--at", AT], "do not belong together"),
    ("tampered-not-object", ["predict", "t-not-object", "--at", AT], "not a JSON object"),
    ("tampered-not-json", ["plot", "t-not-json"], "not a lawfit fit.json"),
    ("tampered-objective", ["predict", "t-objective", "--at", AT], "unknown objective"),
    ("tampered-columns", ["predict", "t-columns", "--at", AT], "'columns'"),
    ("tampered-key", ["predict", "t-key", "--at", AT], "'key'"),
    # --- fit: every option ------------------------------------------------------------------
    ("fit-no-runs-arg", ["fit"], "required: runs"),
    ("fit-missing-file", ["fit", "nothere.csv"], "no such file"),
    ("fit-empty-file", ["fit", "empty.csv"], "cannot read"),
    ("fit-header-only", ["fit", "header-only.csv"], "has no rows"),
    ("fit-corrupt-parquet", ["fit", "corrupt.parquet"], "cannot read"),
    ("fit-empty-dir", ["fit", "empty-dir"], "holds no .parquet"),
    ("fit-unknown-law", ["fit", "runs.csv", "--law", "nope"], "unknown law 'nope'"),
    ("fit-x-missing", ["fit", "runs.csv", "--x", "nope"], "missing column 'nope'"),
    ("fit-x-empty", ["fit", "runs.csv", "--x", ""], "--x needs a column name"),
    ("fit-x-at-missing", ["fit", "runs.csv", "--x", "@nope"], "missing column 'nope'"),
    ("fit-d-text", ["fit", "runs.csv", "--d", "task"], "non-numeric"),
    ("fit-y-missing", ["fit", "runs.csv", "--y", "nope"], "missing column 'nope'"),
    ("fit-by-missing", ["fit", "runs.csv", "--by", "nope"], "missing column 'nope'"),
    ("fit-by-empty", ["fit", "runs.csv", "--by", ","], "--by needs a column name"),
    ("fit-where-empty", ["fit", "runs.csv", "--where", ""], "empty expression"),
    ("fit-where-number", ["fit", "runs.csv", "--where", "loss * 2"], "not a condition"),
    ("fit-where-types", ["fit", "runs.csv", "--where", "task > 1"], "cannot compare"),
    ("fit-where-unknown-column", ["fit", "runs.csv", "--where", "nope > 1"],
     "unknown column 'nope'"),
    ("fit-where-no-rows", ["fit", "runs.csv", "--where", "loss < 0"], "leaves no rows"),
    ("fit-where-too-long", ["fit", "runs.csv", "--where", "loss > 0 and " * 300 + "loss > 0"],
     "the limit is"),
    ("fit-objective", ["fit", "runs.csv", "--objective", "l2"], "invalid choice"),
    ("fit-delta-negative", ["fit", "runs.csv", "--delta", "-1"], "--delta must be a positive"),
    ("fit-delta-nan", ["fit", "runs.csv", "--delta", "nan"], "--delta must be a positive"),
    ("fit-delta-text", ["fit", "runs.csv", "--delta", "abc"], "invalid float value"),
    ("fit-starts-zero", ["fit", "runs.csv", "--starts", "0"], "positive count"),
    ("fit-starts-text", ["fit", "runs.csv", "--starts", "many"], "--starts must be"),
    ("fit-seeds", ["fit", "runs.csv", "--seeds", "some"], "invalid choice"),
    ("fit-seed-negative", ["fit", "runs.csv", "--seed", "-1"], "--seed must be >= 0"),
    ("fit-recipe", ["fit", "runs.csv", "--recipe", "nope"], "invalid choice"),
    ("fit-recipe-without-factor", ["fit", "runs.csv", "--recipe", "zhang2024"],
     "missing column 'factor'"),
    ("fit-recipe-with-fix", ["fit", "runs.csv", "--recipe", "zhang2024", "--fix", "E=1"],
     "drop --fix"),
    ("fit-bootstrap-negative", ["fit", "runs.csv", "--bootstrap", "-1"], "--bootstrap must be"),
    ("fit-fitter", ["fit", "runs.csv", "--fitter", "nope"], "invalid choice"),
    ("fit-solver-varpro-huber", ["fit", "runs.csv", "--solver", "varpro"], "objective 'mse'"),
    ("fit-joint-missing", ["fit", "runs.csv", "--joint", "nope"], "missing column 'nope'"),
    ("fit-share-without-joint", ["fit", "runs.csv", "--share", "E"], "needs a joint fit"),
    ("fit-share-unknown", ["fit", "runs.csv", "--joint", "task", "--share", "Q"],
     "unknown parameter"),
    ("fit-fix-unknown", ["fit", "runs.csv", "--fix", "Q=1"], "unknown parameter"),
    ("fit-fix-no-value", ["fit", "runs.csv", "--fix", "E"], "expects NAME=VALUE"),
    ("fit-fix-twice", ["fit", "runs.csv", "--fix", "E=1,E=2"], "names 'E' twice"),
    ("fit-fix-no-name", ["fit", "runs.csv", "--fix", "=1"], "a name is missing"),
    ("fit-fix-inf", ["fit", "runs.csv", "--fix", "E=inf"], "not a finite number"),
    ("fit-fix-everything", ["fit", "runs.csv", "--fix", "A=1,E=0.5,alpha=0.3,beta=0.1"],
     "nothing is left to fit"),
    ("fit-level-0", ["fit", "runs.csv", "--level", "0"], "--level must lie"),
    ("fit-level-nan", ["fit", "runs.csv", "--level", "nan"], "--level must lie"),
    ("fit-priors-without-bayes", ["fit", "runs.csv", "--priors", "p.toml"], "need --fitter bayes"),
    ("fit-priors-missing", ["fit", "runs.csv", "--fitter", "bayes", "--priors", "nothere.toml"],
     "no such priors file"),
    ("fit-priors-corrupt", ["fit", "runs.csv", "--fitter", "bayes", "--priors", "bad.toml"],
     "cannot read priors file"),
    ("fit-chains-zero", ["fit", "runs.csv", "--fitter", "bayes", "--chains", "0"],
     "--chains must be positive"),
    ("fit-warmup-negative", ["fit", "runs.csv", "--fitter", "bayes", "--warmup", "-1"],
     "--warmup must be positive"),
    ("fit-draws-zero", ["fit", "runs.csv", "--fitter", "bayes", "--draws", "0"],
     "--draws must be positive"),
    ("fit-likelihood", ["fit", "runs.csv", "--likelihood", "cauchy"], "invalid choice"),
    ("fit-plot-without-out", ["fit", "runs.csv", "--plot"], "--plot needs --out"),
    ("fit-out-exists", ["fit", "runs.csv", "--out", "fit"], "exists: choose another --out"),
    ("fit-new-out-bad-column", ["fit", "runs.csv", "--out", "new-out/fit", "--x", "nope"],
     "missing column"),
    ("fit-unknown-option", ["fit", "runs.csv", "--bogus"], "unrecognized arguments"),
    # --- predict ----------------------------------------------------------------------------
    ("predict-no-fit", ["predict", "nothere", "--at", AT], "no fit.json"),
    ("predict-on-a-table", ["predict", "runs.csv", "--at", AT], "not a lawfit fit.json"),
    ("predict-no-at", ["predict", "fit"], "required: --at"),
    ("predict-at-empty", ["predict", "fit", "--at", ""], "--at expects"),
    ("predict-at-missing-variable", ["predict", "fit", "--at", "model_params=1e9"],
     "needs column 'finetune_examples'"),
    ("predict-at-negative", ["predict", "fit", "--at", "model_params=-1,finetune_examples=1e4"],
     "must be positive"),
    ("predict-at-inf", ["predict", "fit", "--at", "model_params=inf,finetune_examples=1e4"],
     "not a finite number"),
    ("predict-at-unknown-group", ["predict", "fit", "--at", AT + ",task=nope"], "no fitted group"),
    ("predict-at-unknown-column", ["predict", "fit", "--at", AT + ",colour=red"],
     "which the fit does not use"),
    ("predict-at-no-equals", ["predict", "fit", "--at", "model_params1e9"], "expects NAME=VALUE"),
    ("predict-level-0", ["predict", "fit", "--at", AT, "--level", "0"], "--level must lie"),
    # --- simulate ---------------------------------------------------------------------------
    ("simulate-no-out", ["simulate"], "required: --out"),
    ("simulate-out-suffix", ["simulate", "--paper", "zhang2024", "--out", "x.txt"],
     "must end in .csv or .parquet"),
    ("simulate-nothing", ["simulate", "--out", "new.csv"], "give --paper zhang2024"),
    ("simulate-grid-missing-d", ["simulate", "--params", GOOD_PARAMS, "--grid",
                                 "model_params=1e9", "--out", "new.csv"], "the grid needs column"),
    ("simulate-unknown-param", ["simulate", "--params", GOOD_PARAMS + ",Q=2", *GRID,
                                "--out", "new.csv"], "unknown parameter"),
    ("simulate-grid-text", ["simulate", "--params", GOOD_PARAMS, "--grid", "model_params=1e9:x",
                            "--grid", "finetune_examples=1e3", "--out", "new.csv"],
     "'x' is not a number"),
    ("simulate-grid-no-values", ["simulate", "--params", GOOD_PARAMS, "--grid", "model_params",
                                 "--grid", "finetune_examples=1e3", "--out", "new.csv"],
     "--grid expects"),
    ("simulate-noise-negative", ["simulate", "--params", GOOD_PARAMS, *GRID, "--noise", "-1",
                                 "--out", "new.csv"], "--noise must be"),
    ("simulate-seeds-zero", ["simulate", "--params", GOOD_PARAMS, *GRID, "--seeds", "0",
                             "--out", "new.csv"], "--seeds must be >= 1"),
    ("simulate-seed-negative", ["simulate", "--params", GOOD_PARAMS, *GRID, "--seed", "-2",
                                "--out", "new.csv"], "--seed must be >= 0"),
    ("simulate-unknown-law", ["simulate", "--params", GOOD_PARAMS, *GRID, "--law", "nope",
                              "--out", "new.csv"], "unknown law"),
    ("simulate-set-no-value", ["simulate", "--params", GOOD_PARAMS, *GRID, "--set", "task",
                               "--out", "new.csv"], "--set expects"),
    ("simulate-set-and-grid", ["simulate", "--params", GOOD_PARAMS, *GRID, "--set",
                               "model_params=3", "--out", "new.csv"], "both give column"),
    ("simulate-overflow", ["simulate", "--params", "A=1e300,E=0.6,alpha=-30,beta=0.1", *GRID,
                           "--out", "new.csv"], "non-finite losses"),
    ("simulate-paper-with-params", ["simulate", "--paper", "zhang2024", "--params", "A=1",
                                    "--out", "new.csv"], "brings its own law"),
    ("simulate-out-exists", ["simulate", "--paper", "zhang2024", "--out", "runs.csv"],
     "exists: choose another --out"),
    ("simulate-out-parent-file", ["simulate", "--paper", "zhang2024", "--out", "a-file/s.csv"],
     "a-file is a file"),
    ("simulate-out-read-only", ["simulate", "--paper", "zhang2024", "--out", "/sys/s.csv"],
     "cannot write into"),
    # --- critical ---------------------------------------------------------------------------
    ("critical-no-between", ["critical", "runs2.csv"], "required: --between"),
    ("critical-between-one", ["critical", "runs2.csv", "--between", "fmt"], "two different"),
    ("critical-between-same", ["critical", "runs2.csv", "--between", "fmt,fmt"], "two different"),
    ("critical-between-unknown", ["critical", "runs2.csv", "--between", "fmt,nope"],
     "method 'nope' has no runs"),
    ("critical-method-column", ["critical", "runs2.csv", "--between", "fmt,lora",
                                "--method-column", "nope"], "no 'nope' column"),
    ("critical-at-text", ["critical", "runs2.csv", "--between", "fmt,lora", "--at",
                          "model_params=abc"], "is not a number"),
    ("critical-at-negative", ["critical", "runs2.csv", "--between", "fmt,lora", "--at",
                              "model_params=-1"], "positive and finite"),
    ("critical-d-range-one", ["critical", "runs2.csv", "--between", "fmt,lora", "--d-range", "5"],
     "--d-range expects"),
    ("critical-d-range-order", ["critical", "runs2.csv", "--between", "fmt,lora", "--d-range",
                                "10,1"], "0 < LO < HI"),
    ("critical-level", ["critical", "runs2.csv", "--between", "fmt,lora", "--level", "2"],
     "--level must lie"),
    ("critical-bootstrap", ["critical", "runs2.csv", "--between", "fmt,lora", "--bootstrap", "-5"],
     "--bootstrap must be"),
    ("critical-plot-without-out", ["critical", "runs2.csv", "--between", "fmt,lora", "--plot"],
     "--plot needs --out"),
    ("critical-fit-dir-with-where", ["critical", "fit", "--between", "fmt,lora", "--where",
                                     "loss > 0"], "is a fit directory"),
    ("critical-fit-dir-wrong-methods", ["critical", "fit", "--between", "fmt,lora"],
     "not among the fitted methods"),
    # --- backtest ---------------------------------------------------------------------------
    ("backtest-holdout", ["backtest", "runs.csv", "--holdout", "nope"], "--holdout must be"),
    ("backtest-holdout-text", ["backtest", "runs.csv", "--holdout", "model_params=abc"],
     "must be numbers"),
    ("backtest-holdout-no-match", ["backtest", "runs.csv", "--holdout", "model_params=5e20"],
     "matches no run"),
    ("backtest-laws-unknown", ["backtest", "runs.csv", "--laws", "nope"], "unknown law"),
    ("backtest-laws-empty", ["backtest", "runs.csv", "--laws", ""], "at least one law"),
    ("backtest-laws-power", ["backtest", "runs.csv", "--laws", "power"], "holds out X and D"),
    ("backtest-laws-twice", ["backtest", "runs.csv", "--laws", "additive,additive"], "twice"),
    ("backtest-law", ["backtest", "runs.csv", "--law", "additive"], "not --law"),
    ("backtest-bootstrap", ["backtest", "runs.csv", "--bootstrap", "-1"], "--bootstrap must be"),
    ("backtest-level", ["backtest", "runs.csv", "--level", "1"], "--level must lie"),
    # --- plot -------------------------------------------------------------------------------
    ("plot-missing", ["plot", "nothere"], "is not a directory"),
    ("plot-a-table", ["plot", "runs.csv"], "is not a directory"),
    ("plot-empty-dir", ["plot", "empty-dir"], "holds no fit.json"),
    ("plot-format", ["plot", "fit", "--format", "jpg"], "--format takes"),
    ("plot-runs-missing", ["plot", "fit", "--runs", "nothere.csv"], "no such file"),
    ("plot-runs-corrupt", ["plot", "fit", "--runs", "corrupt.parquet", "--out", "figs"],
     "cannot read"),
    ("plot-out-parent-file", ["plot", "fit", "--out", "a-file/figs"], "a-file is a file"),
    ("plot-critical-bad-json", ["plot", "critical-bad-json"], "is not valid JSON"),
    # --- compare ----------------------------------------------------------------------------
    ("compare-one-law", ["compare", "runs.csv", "--laws", "multiplicative"], "at least two laws"),
    ("compare-unknown-law", ["compare", "runs.csv", "--laws", "nope,additive"], "unknown law"),
    ("compare-law", ["compare", "runs.csv", "--law", "power"], "not --law"),
    ("compare-chains", ["compare", "runs.csv", "--chains", "0"], "must be positive"),
    ("compare-priors-missing", ["compare", "runs.csv", "--priors", "nothere.toml"],
     "no such priors file"),
    ("compare-holdout-fitter", ["compare", "runs.csv", "--holdout-fitter", "nope"],
     "invalid choice"),
    # --- run (argument parsing only) ---------------------------------------------------------
    ("run-no-sweep", ["run"], "required: sweep"),
    ("run-missing-sweep", ["run", "nothere.toml"], "not found"),
]


def _runs(method="lora", shift=0.0):
    df = simulate("multiplicative", dict(A=2e3, E=0.6, alpha=0.36, beta=0.08),
                  {"model_params": [1e9, 2e9, 4e9], "finetune_examples": [1e3, 1e4, 1e5]},
                  noise=0.003, seeds=1, extra={"task": "demo", "method": method})
    df["loss"] += shift
    return df


# small input files, broken in one way each: path under the cases' directory -> content
FILES = {
    "a-file": b"a file, not a directory\n",
    "empty.csv": b"",
    "header-only.csv": b"task,loss\n",
    "corrupt.parquet": b"PAR1 but not really \x00\x01",
    "bad.toml": b'[E]\ndist = "lognormal(',
    "p.toml": b"",
    "critical-empty/critical.json": b"{}",
    "critical-bad-json/critical.json": b'{"between": ',
    "backtest-no-csv/backtest.json": b'{"laws": ["multiplicative"]}',
}


def _tamper(root, name, change):
    shutil.copytree(root / "fit", root / f"t-{name}")
    doc = json.loads((root / "fit" / "fit.json").read_text())
    new = copy.deepcopy(doc)
    replaced = change(new)          # edits in place, or returns a replacement document
    new = new if replaced is None else replaced
    text = new if isinstance(new, str) else json.dumps(new)
    (root / f"t-{name}" / "fit.json").write_text(text)


def _settings(**kw):
    return lambda d: d["settings"].update(kw)


def _group(**kw):
    return lambda d: d["groups"][0].update(kw)


TAMPER = {
    "where-at": _settings(where=f"@pd.io.common.os.system('{INJECT}') == 0"),
    "where-import": _settings(where=f"__import__('os').system('{INJECT}')"),
    "where-lambda": _settings(where=f"(lambda: __import__('os').system('{INJECT}'))()"),
    "where-not-text": _settings(where=12),
    "tree-call": _settings(where="loss > 0", where_tree=["call", ["col", "os.system"],
                                                          ["str", INJECT]]),
    "tree-disagrees": _settings(where="loss > 0", where_tree=["cmp", "<", ["col", "loss"],
                                                               ["num", 0]]),
    "rows-bad": _settings(where="loss > 0", where_rows={"table_sha256": "x", "rows": 1,
                                                        "kept": "all"}),
    "law-list": lambda d: d.update(law=["multiplicative"]),
    "law-unknown": lambda d: d.update(law="os.system"),
    "estimate-text": lambda d: d["groups"][0]["params"]["A"].update(estimate="__import__('os')"),
    "estimate-null": lambda d: d["groups"][0]["params"]["A"].update(estimate=None),
    "status": _group(status="pwned"),
    "ranges": _group(ranges={"x": [0, "a"], "d": [1, 2]}),
    "level": lambda d: d["groups"][0]["interval"].update(level=7),
    "groups": lambda d: d.update(groups={"a": 1}),
    "draw-count": lambda d: d["groups"][0]["interval"].update(draws=99),
    "not-object": lambda d: [1, 2],
    "not-json": lambda d: "{not json",
    "objective": lambda d: d.update(objective={"name": "exec", "delta": 1}),
    "columns": lambda d: d.update(columns={"x": 1}),
    "key": _group(key={"task": {"$eval": "x"}}),
}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Build the inputs once (one small real fit), run every case, return {id: result}."""
    root = tmp_path_factory.mktemp("bad-input")
    _runs().to_csv(root / "runs.csv", index=False)
    pd.concat([_runs(), _runs("fmt", 0.05)]).to_csv(root / "runs2.csv", index=False)
    proc = subprocess.run([sys.executable, "-m", "lawfit", "fit", "runs.csv", "--starts", "4",
                           "--bootstrap", "5", "--out", "fit", "--quiet"], cwd=root,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    (root / "sweep").mkdir()
    for _, row in _runs().iterrows():
        pd.DataFrame([row]).to_parquet(root / "sweep" / f"{row.run_id}.parquet", index=False)
    text = _runs().astype({"model_params": str, "loss": str})
    text.to_parquet(root / "text.parquet", index=False)
    (root / "empty-dir").mkdir()
    for name, content in FILES.items():
        (root / name).parent.mkdir(exist_ok=True)
        (root / name).write_bytes(content)
    shutil.copytree(root / "fit", root / "fit-no-draws")
    (root / "fit-no-draws" / "draws.parquet").unlink()
    shutil.copytree(root / "fit", root / "fit-zero-draws")
    (root / "fit-zero-draws" / "draws.parquet").write_bytes(b"")
    for name, change in TAMPER.items():
        _tamper(root, name, change)
    cases = [{"argv": argv, "cwd": str(root), "watch": str(root)} for _, argv, _ in CASES]
    (root.parent / "cases.json").write_text(json.dumps(cases))
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "cli_runner.py"),
                           str(root.parent / "cases.json"), str(root.parent / "results.json")],
                          capture_output=True, text=True, timeout=1200,
                          env=os.environ | {"LAWFIT_CASE_TIMEOUT": "120"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads((root.parent / "results.json").read_text())
    return {"root": root} | {cid: r for (cid, _, _), r in zip(CASES, out)}


def test_case_ids_are_unique():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))


@pytest.mark.slow
@pytest.mark.parametrize("cid, argv, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_line_and_touches_nothing(results, cid, argv, fragment):
    r = results[cid]
    lines = r["stderr"].strip().splitlines()
    assert r["rc"] == 2, f"exit {r['rc']}\n{r['stderr'][-2000:]}"
    assert "Traceback" not in r["stderr"]
    assert len(lines) == 1, r["stderr"]
    assert lines[0].startswith("lawfit") and "error:" in lines[0], lines[0]
    assert fragment in lines[0], lines[0]
    assert r["changed"] == [], f"files changed: {r['changed']}"
    assert not (results["root"] / "CANARY").exists()


@pytest.mark.slow
def test_the_headline_injection_runs_nothing_in_a_real_process(tmp_path):
    """`lawfit fit RUNS --where "@pd.io.common.os.system('touch X') == 0"` ran the command
    through pandas query; now it is a parse error, in a plain `python -m lawfit` process."""
    _runs().to_csv(tmp_path / "runs.csv", index=False)
    proc = subprocess.run([sys.executable, "-m", "lawfit", "fit", "runs.csv", "--where",
                           f"@pd.io.common.os.system('{INJECT}') == 0"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "CANARY").exists()


@pytest.mark.slow
def test_a_where_filtered_fit_is_plotted_without_evaluating_its_expression(tmp_path):
    """plot re-selects the fitted rows from the positions fit.json records; an expression in the
    artefact is data. The same table gives the fitted points; another table, curves only."""
    import lawfit
    from lawfit.io.artefacts import load_fit, write_fit
    from lawfit.plot import plot_fit
    frame = pd.concat([_runs(), _runs().assign(finetune_examples=0)], ignore_index=True)
    res = lawfit.fit(frame, where="finetune_examples > 0", starts=4)
    doc = res.settings
    assert doc["where"] == "finetune_examples > 0"
    assert doc["where_tree"] == ["cmp", ">", ["col", "finetune_examples"], ["num", 0]]
    assert doc["where_rows"]["kept"] == [[0, 9]] and doc["where_rows"]["rows"] == 18
    write_fit(res, tmp_path / "fit")
    loaded = load_fit(tmp_path / "fit")
    # the expression evaluator is not reachable from plotting a loaded fit
    import lawfit.expr as expr
    calls = []
    orig = expr.Expr.evaluate
    expr.Expr.evaluate = lambda self, f: calls.append(1) or orig(self, f)
    try:
        assert plot_fit(loaded, frame, tmp_path / "figs", formats=("png",))
        with pytest.raises(lawfit.DataError, match="not the one the fit filtered"):
            plot_fit(loaded, frame.iloc[::-1], tmp_path / "figs", formats=("png",))
    finally:
        expr.Expr.evaluate = orig
    assert calls == []


@pytest.mark.slow
def test_duplicate_free_tables_do_not_warn():
    import lawfit
    res = lawfit.fit(_runs(), starts=4)
    assert not any("repeat" in w for w in res.groups[0].warnings)
    assert np.isfinite(res.groups[0].estimate).all()


@pytest.mark.parametrize("where", [
    f"@pd.io.common.os.system('{INJECT}') == 0",
    f"__import__('os').system('{INJECT}') == 0",
    f"loss.__class__.__init__.__globals__['os'].system('{INJECT}')",
    f"(lambda: __import__('os').system('{INJECT}'))() == 0",
])
def test_the_api_refuses_injections_too(tmp_path, monkeypatch, where):
    """lawfit.fit, lawfit.backtest.backtest, lawfit.recipes and lawfit.expr.filter_frame take the
    same grammar: a DataError, and the canary is never created."""
    import lawfit
    from lawfit.analysis.backtest import backtest
    from lawfit.analysis.recipes import zhang2024
    from lawfit.expr import filter_frame
    monkeypatch.chdir(tmp_path)
    frame = _runs()
    for call in (lambda: lawfit.fit(frame, where=where, starts=2),
                 lambda: backtest(frame, ["multiplicative"], where=where),
                 lambda: zhang2024(frame.assign(factor="model_params"), where=where),
                 lambda: filter_frame(frame, where)):
        with pytest.raises(lawfit.DataError, match="cannot parse expression"):
            call()
    assert not (tmp_path / "CANARY").exists()

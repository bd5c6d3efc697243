"""`lawfit suggest`: the batch's bookkeeping (n, budget, no duplicates, cost), the targets agree
with the intervals lawfit reports elsewhere, an informative run is worth more than an uninformative
one (expected and after a real refit), the command line, bad input, and sweep files."""
from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import lawfit
from lawfit import paper
from lawfit.analysis.critical import crossings
from lawfit.analysis.suggest import CrossingTarget, ParameterTarget, PredictionTarget, suggest
from lawfit.cli.main import main
from lawfit.simulate import simulate

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("prompt", "lora")
GRID = {"model_params": [1e9, 2e9, 4e9, 8e9, 16e9],
        "finetune_examples": [8e3, 2e4, 5e4, 1e5]}


def campaign(seed: int = 0, seeds: int = 3) -> pd.DataFrame:
    """Table 4's En-De prompt tuning and LoRA at 1B-4B (no 8B, no 16B model)."""
    return pd.concat([simulate("multiplicative", paper.law_params("wmt14_en_de", m, "model_params"),
                               {"model_params": [1e9, 2e9, 4e9],
                                "finetune_examples": [8e3, 2e4, 4e4, 6e4, 8e4, 1e5]},
                               noise=0.005, seeds=seeds, seed=seed * 10 + i,
                               extra={"task": "wmt14_en_de", "method": m})
                      for i, m in enumerate(METHODS)], ignore_index=True)


@pytest.fixture(scope="module")
def runs():
    return campaign()


@pytest.fixture(scope="module")
def fitted(runs):
    return lawfit.fit(runs, "multiplicative", bootstrap=60, seed=0)


def go(runs, fitted, target=None, **kw):
    kw.setdefault("candidates", GRID)
    return suggest(runs, target or CrossingTarget(METHODS, 8e9), fit_result=fitted, **kw)


def configs(df):
    return list(zip(df["method"], df["model_params"], df["finetune_examples"]))


# --- bookkeeping ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_n_is_respected_without_duplicates(runs, fitted):
    res = go(runs, fitted, n=6, cost="1")
    assert len(res.runs) == 6
    assert list(res.runs["order"]) == [1, 2, 3, 4, 5, 6]
    assert len(set(configs(res.runs))) == 6                         # no duplicate picks
    cand = set(configs(res.candidates))
    assert set(configs(res.runs)) <= cand
    assert len(cand) == 2 * 5 * 4                                   # methods x X x D
    w = [res.width_now, *res.runs["width_after"]]
    assert all(b < a for a, b in zip(w, w[1:]))                     # every pick narrows
    assert np.allclose(res.runs["gain"], -np.diff(w))
    assert res.candidates["picked"].sum() == 6


def test_budget_is_respected_and_used(runs, fitted):
    budget = 6e14
    res = go(runs, fitted, budget=budget)
    spent = float((res.runs["model_params"] * res.runs["finetune_examples"]).sum())
    assert np.isclose(res.total_cost, spent) and 0 < spent <= budget
    assert np.allclose(res.runs["cost"], res.runs["model_params"] * res.runs["finetune_examples"])
    left = res.candidates[~res.candidates["picked"]]
    # greedy stops only when nothing else fits (or nothing else would help)
    assert (left["cost"] > budget - spent).all() or any("stopped" in n for n in res.notes)


def test_cost_per_run_changes_the_choice(runs, fitted):
    flops = go(runs, fitted, n=4)
    unit = go(runs, fitted, n=4, cost="1")
    # per unit cost, big models at big D are dear: the FLOPs-priced batch is cheaper
    assert flops.total_cost < float((unit.runs["model_params"]
                                     * unit.runs["finetune_examples"]).sum())
    assert unit.width_after <= flops.width_after + 1e-12


def test_n_and_budget_are_exclusive_and_checked(runs, fitted):
    for kw in ({"n": 2, "budget": 1e15}, {"n": 0}, {"n": 2.5}, {"budget": -1.0}):
        with pytest.raises(lawfit.DataError):
            go(runs, fitted, **kw)


@pytest.mark.parametrize("cost,message", [
    ("gpu_hours * 2", "do not have"),
    ("model_params - 1e10", "positive and finite"),
    ("model_params > 1", "number per run"),
    ("__import__('os').system('true')", "cannot parse"),
    ("", "empty expression"),
])
def test_bad_cost_is_refused(runs, fitted, cost, message):
    with pytest.raises(lawfit.DataError, match=message):
        go(runs, fitted, cost=cost)


# --- the targets agree with the intervals lawfit reports ------------------------------------------

def test_crossing_interval_now_matches_lawfit_critical(runs, fitted):
    res = go(runs, fitted, n=1)
    row = crossings(fitted.group(method="prompt"), fitted.group(method="lora"), 8e9,
                    names=METHODS)
    c = row.crossings[0]
    assert math.isclose(res.estimate, math.log10(c.d), abs_tol=1e-9)
    lo, hi = res.interval_now
    assert abs(lo - math.log10(c.lo)) < 0.01
    if math.isfinite(c.hi):
        assert abs(hi - math.log10(c.hi)) < 0.01
    else:                                   # beyond the range: so is suggest's upper end
        assert hi > 12


def test_prediction_and_parameter_targets_match_the_fit(runs, fitted):
    pt = {"model_params": 16e9, "finetune_examples": 1e6, "method": "lora"}
    res = go(runs, fitted, PredictionTarget(pt), n=2)
    p = fitted.predict(pd.DataFrame([pt]), interval="curve")   # what more runs can narrow
    assert math.isclose(res.estimate, p["prediction"][0], rel_tol=1e-9)
    assert math.isclose(res.width_now, p["hi"][0] - p["lo"][0], rel_tol=1e-9)
    assert set(res.runs["method"]) == {"lora"}                      # prompt runs cannot help
    assert res.runs["width_after"].iloc[-1] < res.width_now
    par = go(runs, fitted, ParameterTarget("alpha", {"method": "prompt"}), n=2)
    row = fitted.params.query("method == 'prompt' and param == 'alpha'").iloc[0]
    assert math.isclose(par.width_now, row["hi"] - row["lo"], rel_tol=1e-9)
    assert set(par.runs["method"]) == {"prompt"}


def test_bad_targets_are_refused(runs, fitted):
    with pytest.raises(lawfit.DataError, match="not a parameter"):
        go(runs, fitted, ParameterTarget("gamma", {"method": "lora"}))
    with pytest.raises(lawfit.DataError, match="matches 2 fitted groups"):
        go(runs, fitted, ParameterTarget("alpha"))
    with pytest.raises(lawfit.DataError, match="needs finetune_examples"):
        go(runs, fitted, PredictionTarget({"model_params": 1e10, "method": "lora"}))
    with pytest.raises(lawfit.DataError, match="two different methods"):
        go(runs, fitted, CrossingTarget(("lora", "lora"), 8e9))
    with pytest.raises(lawfit.DataError, match="were not fitted"):
        go(runs, fitted, candidates=GRID | {"method": ["fmt"]})
    with pytest.raises(lawfit.DataError, match="positive numbers"):
        go(runs, fitted, candidates={"model_params": [-1.0], "finetune_examples": [1e4]})


# --- an informative run is worth more ---------------------------------------------------------------

def test_informative_runs_narrow_more_than_uninformative_ones(runs, fitted):
    """Expected: runs at 8B near the crossing beat runs at 1B far above it. Then a real check:
    add each pair of runs (true curves + noise), refit, and measure the 8B crossing's interval."""
    res = go(runs, fitted, n=1, cost="1")
    cand = res.candidates.set_index(["method", "model_params", "finetune_examples"])
    informative = [("prompt", 8e9, 2e4), ("lora", 8e9, 2e4)]
    useless = [("prompt", 1e9, 1e5), ("lora", 1e9, 1e5)]
    for good, bad in zip(informative, useless):
        assert cand.loc[good, "width_alone"] < cand.loc[bad, "width_alone"] - 0.02
    picked = res.runs.iloc[0]
    assert picked["model_params"] >= 8e9            # the first pick lies beyond the measured X

    def width_after(extra):
        rows = []
        for k, (m, x, d) in enumerate(extra):
            for s in range(3):                      # three seeds, as the campaign
                p = paper.law_params("wmt14_en_de", m, "model_params")
                mean = p["A"] * x ** -p["alpha"] * d ** -p["beta"] + p["E"]
                rows.append({"task": "wmt14_en_de", "method": m, "model_params": x,
                             "finetune_examples": d, "seed": s,
                             "loss": mean + np.random.default_rng([7, k, s]).normal(0, 0.005)})
        frame = pd.concat([runs, pd.DataFrame(rows)], ignore_index=True)
        f = lawfit.fit(frame, "multiplicative", bootstrap=60, seed=0)
        c = crossings(f.group(method="prompt"), f.group(method="lora"), 8e9, names=METHODS)
        c = c.crossings[0]
        return math.log10(c.hi) - math.log10(c.lo) if c.lo > 0 else math.inf

    good, bad = width_after(informative), width_after(useless)
    assert good < 0.8 * bad, (good, bad)


# --- command line ---------------------------------------------------------------------------------

def cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def runs_csv(tmp_path_factory, runs):
    path = tmp_path_factory.mktemp("suggest") / "runs.csv"
    runs.to_csv(path, index=False)
    return path


BAD = [
    (["--between", "prompt,lora", "--at", "model_params=8e9", "--candidates", "model_params="],
     "empty value"),
    (["--between", "prompt,lora", "--at", "model_params=8e9", "--candidates", "nope=1:2"],
     "does not have"),
    (["--between", "prompt,lora", "--at", "model_params=8e9", "--candidates", "method=fmt"],
     "have no runs to fit"),
    (["--between", "prompt,lora", "--at", "model_params=8e9", "--candidates", "model_params"],
     "expects COL=v1:v2"),
    (["--between", "prompt,lora", "--at", "model_params=8e9", "--cost", "open('x')"],
     "cannot parse"),
    (["--between", "prompt,lora", "--at", "model_params=8e9", "--cost", "gpu_hours"],
     "neither the runs table"),
    (["--between", "prompt,lora", "--at", "model_params=8e9", "--n", "3", "--budget", "1e15"],
     "not both"),
    (["--between", "prompt,fmt", "--at", "model_params=8e9"], "method 'fmt' has no runs"),
    (["--between", "prompt,lora"], "needs --at"),
    (["--between", "prompt,lora", "--at", "pretrain_tokens=1e11"], "the law's X is"),
    (["--between", "prompt,lora", "--at", "model_params=8e9,16e9"], "one X value"),
    (["--target-param", "gamma"], "not a parameter"),
    ([], "give exactly one target"),
    (["--target-param", "alpha", "--target", "model_params=1e9"], "give exactly one target"),
    (["--between", "prompt,lora", "--at", "model_params=8e9", "--bootstrap", "5"],
     "at least 20"),
]


@pytest.mark.parametrize("extra,message", BAD)
def test_bad_input_exits_2_with_one_line(capsys, runs_csv, tmp_path, extra, message):
    code, out, err = cli(capsys, "suggest", runs_csv, *extra, "--out", tmp_path / "o")
    assert code == 2, err
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "o" / "suggest.json").exists()


def test_command_line_end_to_end(capsys, runs_csv, tmp_path):
    out = tmp_path / "o"
    code, stdout, err = cli(capsys, "suggest", runs_csv, "--between", "prompt,lora", "--at",
                            "model_params=8e9", "--candidates",
                            "model_params=4e9:8e9:16e9,finetune_examples=1e4:3e4:1e5",
                            "--n", "3", "--bootstrap", "30", "--quiet", "--out", out)
    assert code == 0, err
    assert "target: crossing prompt vs lora at model_params=8e+09" in stdout
    assert "expected width after 3 runs" in stdout
    doc = json.loads((out / "suggest.json").read_text(),
                     parse_constant=lambda c: pytest.fail(f"{c} in suggest.json"))
    assert len(doc["runs"]) == 3
    assert {"method", "model_params", "finetune_examples", "cost", "width_after"} <= set(
        doc["runs"][0])
    assert doc["lawfit_version"] == lawfit.__version__
    assert len(doc["data"]["sha256"]) == 64 and doc["settings"]["seed"] == 0
    assert doc["target"]["kind"] == "crossing" and doc["cost"]["expression"].startswith(
        "model_params")
    assert (out / "suggest.png").stat().st_size > 1000
    from lawfit.io.results import read_suggestion
    back = read_suggestion(out)                          # suggest.json reads back as it was
    assert back.to_dict() == doc and len(back.runs) == 3 and back.n == 3
    before = (out / "suggest.json").read_text()
    code, _, err = cli(capsys, "suggest", runs_csv, "--target-param", "alpha", "--group",
                       "method=lora", "--out", out)
    assert code == 2 and "exists" in err                           # nothing overwritten
    assert (out / "suggest.json").read_text() == before


# --- sweep files ------------------------------------------------------------------------------------

@pytest.mark.slow
def test_emit_toml_writes_exactly_the_picks_as_runnable_sweeps(tmp_path):
    pytest.importorskip("runners.sweep")
    from lawfit.cli.suggest import emit_toml
    from runners.sweep import load_plan
    frame, _ = lawfit.read_runs(ROOT / "data" / "cpu_sweep")
    sizes = sorted(frame["model_params"].unique())
    runs = pd.DataFrame({"method": ["fmt", "lora", "fmt", "lora", "prompt"],
                         "model_params": [sizes[0], sizes[0], sizes[3], sizes[3], sizes[1]],
                         "finetune_examples": [3200.0, 3200.0, 400.0, 800.0, 400.0]})
    base = ROOT / "data" / "cpu_sweep.toml"
    paths = emit_toml(runs, frame, str(base), str(tmp_path / "next.toml"))
    assert len(paths) >= 2 and all(p.name.startswith("next-") for p in paths)
    planned = []
    for p in paths:
        plan = load_plan(p)
        assert plan.out == (ROOT / "data" / "cpu_sweep").resolve()   # rows land beside the old
        for r in plan.runs:
            c = r["config"]
            from runners.config import ModelConfig, param_count
            n = param_count(ModelConfig(**{k: v for k, v in c["model"].items()}))
            planned.append((c["method"], n, c["finetune_examples"], c["seed"]))
    want = []
    for m, x, d in configs(runs):
        done = frame[(frame.method == m) & (frame.model_params == x)
                     & (frame.finetune_examples == d)]
        want.append((m, int(x), int(d), len(done)))                  # the next unused seed
    assert sorted(planned) == sorted(want)
    # a measured configuration gets a new seed and so a new run id
    assert ("lora", int(sizes[3]), 800, 3) in planned
    with pytest.raises(lawfit.DataError, match="exists"):
        emit_toml(runs, frame, str(base), str(tmp_path / "next.toml"))
    with pytest.raises(lawfit.DataError, match="is not a model of"):
        emit_toml(runs.assign(model_params=123.0), frame, str(base), str(tmp_path / "x.toml"))
    assert tomllib.loads(paths[0].read_text())["sweep"]["seeds"]

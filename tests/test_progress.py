"""lawfit.progress: what a person sees during long work. A bar with counts and an ETA on a
terminal, one line per stage otherwise, nothing with --quiet; engines see a tiny protocol."""
import io

from lawfit.progress import Reporter, counted


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_lines_per_stage_when_stderr_is_not_a_terminal():
    out = io.StringIO()
    rep = Reporter(stream=out)
    rep("group 1/2 task=a: fitting 20 runs")
    with counted(rep, "bootstrap", 200, unit="resample") as advance:
        for _ in range(4):
            advance(50)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3, lines
    assert lines[0].endswith("] group 1/2 task=a: fitting 20 runs") and lines[0].startswith("[")
    assert lines[1].endswith("bootstrap: 200 resamples")
    assert "bootstrap: 200/200 done in" in lines[2]
    assert "\r" not in out.getvalue()        # no bar drawn into a log file


def test_long_stages_report_counts_and_time_left_in_lines():
    out = io.StringIO()
    rep = Reporter(stream=out, every=0.0)      # a line at every advance
    with counted(rep, "backtest fits", 3, unit="law") as advance:
        advance()
        advance()
        advance()
    lines = out.getvalue().splitlines()
    assert "backtest fits: 1/3 laws, about" in lines[1] and "s left" in lines[1]
    assert "backtest fits: 2/3 laws" in lines[2]
    assert "3/3 done" in lines[-1]


def test_a_bar_with_counts_and_eta_on_a_terminal():
    out = Terminal()
    rep = Reporter(stream=out)
    with counted(rep, "bootstrap", 100, unit="resample") as advance:
        advance(40)
        rep("a stage message while the bar is drawn")
        advance(60)
    text = out.getvalue()
    assert "bootstrap" in text and "100/100" in text and "resample" in text
    assert "\r" in text                                   # drawn in place
    assert "<" in text                                    # tqdm's elapsed<remaining (ETA)
    assert "a stage message while the bar is drawn" in text


def test_quiet_shows_nothing_anywhere():
    for stream in (io.StringIO(), Terminal()):
        rep = Reporter(quiet=True, stream=stream)
        rep("hello")
        with counted(rep, "bootstrap", 10) as advance:
            advance(10)
        assert stream.getvalue() == ""


def test_engines_accept_none_or_any_callable():
    with counted(None, "bootstrap", 10) as advance:
        advance(10)
    seen = []
    with counted(seen.append, "groups", 3, unit="group") as advance:
        advance(3)
    assert seen == ["groups: 3 groups"]


def test_the_command_line_counts_backtest_refits_and_quiet_silences_it(tmp_path, capsys):
    """`lawfit backtest` (stderr not a terminal here): one line when the refits start, one when
    they are done; nothing on stderr with --quiet."""
    import numpy as np

    from lawfit.cli.main import main
    from lawfit.simulate import simulate
    runs = simulate("multiplicative", dict(A=2.1e3, E=0.62, alpha=0.36, beta=0.081),
                    {"model_params": [1e9, 2e9, 4e9, 8e9],
                     "finetune_examples": np.geomspace(1e4, 1e5, 5)},
                    noise=0.003, seeds=1, seed=0, extra={"task": "t", "method": "lora"})
    path = tmp_path / "runs.csv"
    runs.to_csv(path, index=False)
    assert main(["backtest", str(path), "--bootstrap", "0", "--starts", "8"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert any(line.endswith("backtest refits: 2 laws") for line in err), err
    assert any("backtest refits: 2/2 done in" in line for line in err), err
    assert main(["backtest", str(path), "--bootstrap", "0", "--starts", "8", "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_a_fit_counts_its_batched_groups_and_bootstrap_resamples():
    """fit() of several groups shows the batched groups and their bootstrap resamples (refitted
    together: one stage over every group's resamples) as counted stages (a bar on a terminal;
    here lines with counts)."""
    import numpy as np
    import pandas as pd

    import lawfit
    from lawfit.simulate import simulate
    grid = {"model_params": np.geomspace(1e8, 8e9, 3), "finetune_examples": np.geomspace(1e3, 1e5, 3)}
    frame = pd.concat([simulate("multiplicative", {"A": a, "E": 1.0, "alpha": 0.3, "beta": 0.08},
                                grid, noise=0.003, seeds=1, seed=i, extra={"task": f"t{i}"})
                       for i, a in enumerate((200.0, 400.0))], ignore_index=True)
    out = io.StringIO()
    lawfit.fit(frame, "multiplicative", by=["task"], bootstrap=20,
               progress=Reporter(stream=out, every=0.0))
    text = out.getvalue()
    assert "groups (batched): 2 groups" in text and "groups (batched): 2/2 done" in text, text
    assert text.count("bootstrap: 40 resamples") == 1, text
    assert text.count("bootstrap: 40/40 done") == 1, text

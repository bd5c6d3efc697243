"""Sharding for the coverage studies (coverage_two_stage.py, critical_study.py): the options that let
several processes each run a slice of the grids / replicates, and the summary of their CSVs."""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"


def add_shard_arguments(ap: argparse.ArgumentParser, unit: str) -> None:
    """``--start``, ``--out``, ``--from-csv``, ``--seconds``, ``--note`` for a study of ``unit``s."""
    ap.add_argument("--start", type=int, default=0, help=f"index of the first {unit} (default 0)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--from-csv", type=Path, nargs="+", default=None,
                    help=f"summarise these per-{unit} CSVs (shards) instead of fitting")
    ap.add_argument("--seconds", type=float, default=None,
                    help="with --from-csv: the shards' wall time, for the summary")
    ap.add_argument("--note", default="", help="appended to the summary's first line (the machine)")


def read_shards(paths: list[Path], order: list[str]) -> pd.DataFrame:
    """The shards' rows as one table, in the order of a single run."""
    df = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
    return df.sort_values(order, kind="stable").reset_index(drop=True)

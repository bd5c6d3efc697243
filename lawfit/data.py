"""Runs tables: reading (CSV, parquet, parquet dataset directories), validation, seed averaging.

Everything that can be wrong with a user's table is reported as a :class:`DataError` whose message
names the problem and the fix in one line. The command line turns it into exit status 2.
"""
from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

CANONICAL = ("task", "method", "model_params", "pretrain_tokens", "finetune_examples",
             "pet_params", "seed", "loss", "run_id")
GROUP_COLUMNS = ("task", "method")
# columns that identify a configuration when runs are averaged over seeds
CONFIG_COLUMNS = ("task", "method", "family", "model", "model_params", "pretrain_tokens",
                  "finetune_examples", "pet_params", "factor")


class DataError(ValueError):
    """Bad input: the message says what is wrong and how to fix it."""


@dataclass(frozen=True)
class Source:
    """Provenance of a runs table."""
    path: str
    sha256: str
    rows: int

    def as_dict(self) -> dict:
        return {"path": self.path, "sha256": self.sha256, "rows": self.rows}


def _read_one(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".txt"):
            return pd.read_csv(path)
        if suffix == ".tsv":
            return pd.read_csv(path, sep="\t")
    except Exception as exc:  # pyarrow/pandas raise many types for corrupt input
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"cannot read {path}: {first} (is it a complete, uncorrupted "
                        f"{suffix.lstrip('.')} file?)") from None
    raise DataError(f"cannot read {path}: unknown file type {suffix!r}; "
                    "give a .csv, .tsv, .parquet file or a directory of .parquet files")


def read_runs(path: str | Path) -> tuple[pd.DataFrame, Source]:
    """Read a runs table from a CSV/TSV/parquet file or a directory of parquet files.

    A directory is a runner's output: one ``<run_id>.parquet`` file per finished run; files whose
    names start with '.' are temporary files of runs in flight and are ignored. A file that cannot be
    read is an error, never silently skipped.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"no such file or directory: {p}")
    digest = hashlib.sha256()
    if p.is_dir():
        files = sorted(f for f in p.glob("*.parquet") if not f.name.startswith("."))
        if not files:
            raise DataError(f"{p} holds no .parquet files: point lawfit at a runs table or at a "
                            "sweep's output directory")
        frames = []
        for f in files:
            digest.update(f.name.encode())
            digest.update(f.read_bytes())
            frames.append(_read_one(f))
        frame = pd.concat(frames, ignore_index=True)
    else:
        digest.update(p.read_bytes())
        frame = _read_one(p)
    if len(frame) == 0:
        raise DataError(f"{p} has no rows")
    return frame, Source(path=str(p), sha256=digest.hexdigest(), rows=len(frame))


def frame_sha256(frame: pd.DataFrame) -> str:
    """Hash of an in-memory table (provenance for frames that did not come from a file)."""
    h = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(h.tobytes() + ",".join(map(str, frame.columns)).encode()).hexdigest()


def require_columns(frame: pd.DataFrame, columns, what: str = "column") -> None:
    for col in columns:
        if col not in frame.columns:
            close = difflib.get_close_matches(col, [str(c) for c in frame.columns], n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise DataError(f"missing {what} {col!r}: {hint}the table has "
                            f"{', '.join(map(str, frame.columns))}; name another with the matching "
                            "option (--x, --d, --y, --by)")


def _rows(index, limit: int = 5) -> str:
    idx = list(index)
    shown = ", ".join(str(i) for i in idx[:limit])
    return shown + (f" and {len(idx) - limit} more" if len(idx) > limit else "")


def numeric_column(frame: pd.DataFrame, col: str, positive: bool) -> np.ndarray:
    """Return ``frame[col]`` as float64, raising DataError for non-numeric, non-finite or
    (when ``positive``) zero/negative values, naming the offending rows."""
    raw = frame[col]
    values = pd.to_numeric(raw, errors="coerce")
    bad = values.isna() & raw.notna()
    if bad.any():
        example = raw[bad].iloc[0]
        raise DataError(f"column {col!r} has non-numeric values (rows {_rows(frame.index[bad])}, "
                        f"e.g. {example!r}): fix or drop those rows")
    arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
    nonfinite = ~np.isfinite(arr)
    if nonfinite.any():
        raise DataError(f"column {col!r} has missing, NaN or infinite values in rows "
                        f"{_rows(frame.index[nonfinite])}: fix them or exclude the rows with "
                        f"--where '{col} == {col}'")
    if positive and (arr <= 0).any():
        rows = frame.index[arr <= 0]
        extra = (" (D_f = 0 is the base model before finetuning, outside every power law)"
                 if col == "finetune_examples" else "")
        raise DataError(f"column {col!r} must be positive but {len(rows)} rows are <= 0 (rows "
                        f"{_rows(rows)}){extra}: exclude them with --where '{col} > 0'")
    return arr


def apply_where(frame: pd.DataFrame, where: str | None) -> pd.DataFrame:
    """Filter rows with a pandas query expression (the CLI's ``--where``)."""
    if not where:
        return frame
    try:
        out = frame.query(where)
    except Exception as exc:
        raise DataError(f"cannot apply --where {where!r}: {str(exc).splitlines()[0]}") from None
    if len(out) == 0:
        raise DataError(f"--where {where!r} leaves no rows")
    return out


def average_seeds(frame: pd.DataFrame, y: str, variables) -> pd.DataFrame:
    """Average ``y`` over runs that share a configuration (differ only in seed).

    The result has one row per configuration and a column ``n_seeds``. Configuration columns are the
    known config columns present in the table plus ``variables``.
    """
    keys = [c for c in dict.fromkeys([*CONFIG_COLUMNS, *variables]) if c in frame.columns]
    if "seed" not in frame.columns or not keys:
        out = frame.copy()
        out["n_seeds"] = 1
        return out
    grouped = frame.groupby(keys, dropna=False, sort=False)
    out = grouped[y].mean().reset_index()
    out["n_seeds"] = grouped[y].size().to_numpy()
    # the seeds' scatter around their mean (sum of squares): the pure error of lawfit.quality
    out["seed_ss"] = (grouped[y].var(ddof=0).fillna(0.0) * out["n_seeds"].to_numpy()).to_numpy()
    return out


def default_by(frame: pd.DataFrame) -> list[str]:
    """DESIGN.md: ``--by`` defaults to every present column among task and method."""
    return [c for c in GROUP_COLUMNS if c in frame.columns]

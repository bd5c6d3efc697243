"""Reading runs tables: CSV, TSV, parquet files and directories of parquet files (a sweep's output)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lawfit.errors import DataError

__all__ = ["Source", "read_runs"]


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

"""The runs-table dataset directory: one parquet file per finished run, written atomically.

Layout: `<out>/<run_id>.parquet`, one row each. Rows are written by lawfit's one atomic write
(`lawfit.io.files.atomic_write`, durable: a temporary dot-file in the same directory, fsynced,
renamed onto the final name, the directory fsynced), so a reader never sees a partial file and a
killed writer leaves only an ignored dot-file (`clean_stale_tmp` removes those of dead writers).
Readers take every `*.parquet` not starting with "." and fail loudly on any they cannot
read: the fitter's reader (lawfit/io/runs.py) reads the directory as it is; the sweep checks every
row file before it runs (`finished_run_ids`).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from lawfit.io.files import atomic_write, remove_stale_temp
from lawfit.table import CANONICAL as CANONICAL_COLUMNS

if TYPE_CHECKING:
    from .device import DeviceInfo

__all__ = ["CANONICAL", "PROVENANCE", "CorruptRunFile", "check_file", "clean_stale_tmp", "device_columns",
           "finished_run_ids", "run_files", "write_row"]

# the canonical columns (names and order: the runs-table contract of lawfit/table.py, which the
# fitter reads) and their types: text, the loss, and integer counts (pet_params is null for fmt)
_TEXT, _REAL = {"task", "method", "run_id"}, {"loss"}
CANONICAL = {c: pa.string() if c in _TEXT else pa.float64() if c in _REAL else pa.int64()
             for c in CANONICAL_COLUMNS}
# what computed the run (runners.device.DeviceInfo): fixed types so that every row's columns agree
PROVENANCE = {
    "backend": pa.string(), "device_kind": pa.string(), "device_count": pa.int64(), "dtype": pa.string(),
    "host": pa.string(), "wall_seconds": pa.float64(),
}
_TYPES = {bool: pa.bool_(), int: pa.int64(), float: pa.float64(), str: pa.string()}


class CorruptRunFile(ValueError):
    """A row file that cannot be read, or is not one run's row: the message names the file."""


def write_row(out: Path, row: dict) -> Path:
    """Write one run's row atomically as `<out>/<run_id>.parquet` (see the module docstring).

    Parameters
    ----------
    out
        The dataset directory (created if absent).
    row
        Column -> value; `run_id` names the file. The canonical columns come first, in the
        contract's order; they and the provenance columns get their fixed types, others the type
        of their value.

    Returns
    -------
    Path
        The row file.
    """
    out.mkdir(parents=True, exist_ok=True)
    fields, arrays = [], []
    row = {**{c: row[c] for c in CANONICAL if c in row}, **row}  # the canonical columns first, in order
    for k, v in row.items():
        if hasattr(v, "item") and not isinstance(v, (str, bytes)):
            v = v.item()  # numpy scalar -> Python scalar
        t = CANONICAL.get(k) or PROVENANCE.get(k) or _TYPES.get(type(v), pa.string())
        fields.append(pa.field(k, t))
        arrays.append(pa.array([v], type=t))
    table = pa.Table.from_arrays(arrays, schema=pa.schema(fields))

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            pq.write_table(table, f)

    return atomic_write(out / f"{row['run_id']}.parquet", write, durable=True)


def device_columns(info: DeviceInfo | dict) -> dict:
    """The row columns recording what computed a run, from a `runners.device.DeviceInfo` (or its dict):
    backend, device_kind, device_count and the resolved compute dtype."""
    d = info if isinstance(info, dict) else info.to_dict()
    missing = [k for k in ("backend", "device_kind", "device_count", "dtype") if d.get(k) is None]
    if missing:
        raise ValueError(f"device information lacks {missing} (resolve the dtype before writing rows)")
    return {"backend": str(d["backend"]), "device_kind": str(d["device_kind"]),
            "device_count": int(d["device_count"]), "dtype": str(d["dtype"])}


def run_files(out: Path) -> list[Path]:
    """The row files of the dataset directory `out` (`*.parquet` not starting with "."), sorted."""
    return sorted(p for p in Path(out).glob("*.parquet") if not p.name.startswith("."))


def check_file(p: Path) -> str:
    """Read one run file fully; return its run_id or raise CorruptRunFile naming the file."""
    try:
        t = pq.read_table(p)
    except Exception as e:  # noqa: BLE001 - any reader failure means the file is unusable
        raise CorruptRunFile(f"cannot read {p}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                             f" (delete it to re-run that configuration)") from None
    if t.num_rows != 1 or "run_id" not in t.column_names:
        raise CorruptRunFile(f"{p} is not a runs-table row file (rows={t.num_rows}, columns={t.column_names})")
    rid = t.column("run_id")[0].as_py()
    if f"{rid}.parquet" != p.name:
        raise CorruptRunFile(f"{p} holds run_id {rid!r}, which does not match its file name")
    return rid


def finished_run_ids(out: Path) -> set[str]:
    """run_ids of the readable run files; raises CorruptRunFile listing every unreadable file."""
    ids, bad = set(), []
    for p in run_files(out):
        try:
            ids.add(check_file(p))
        except CorruptRunFile as e:
            bad.append(str(e))
    if bad:
        raise CorruptRunFile("; ".join(bad))
    return ids


def clean_stale_tmp(out: Path) -> int:
    """Remove temp files left by writers on this host whose process is gone."""
    return remove_stale_temp(out)

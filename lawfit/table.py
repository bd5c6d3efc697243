"""Runs tables in memory: the column contract, validation, selection records, seed averaging.

Everything that can be wrong with a user's table is reported as a :class:`DataError` whose message
names the problem and the fix in one line. The command line turns it into exit status 2.
"""
from __future__ import annotations

import difflib
import hashlib
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from lawfit.errors import DataError

__all__ = ["CANONICAL", "CONFIG_COLUMNS", "GROUP_COLUMNS", "average_seeds", "check_selection_record",
           "column_for", "column_values", "default_by", "duplicate_rows", "frame_sha256",
           "is_per_row", "key_matches", "loss_trend", "numeric_column", "referenced_columns",
           "require_columns", "resolve_columns", "rows_matching", "select_recorded",
           "selection_record", "spec_column"]

CANONICAL = ("task", "method", "model_params", "pretrain_tokens", "finetune_examples",
             "pet_params", "seed", "loss", "run_id")
GROUP_COLUMNS = ("task", "method")
# columns that identify a configuration when runs are averaged over seeds
CONFIG_COLUMNS = ("task", "method", "family", "model", "model_params", "pretrain_tokens",
                  "finetune_examples", "pet_params", "factor")


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
                            "option (x, d, y, by)")


def _rows(index, limit: int = 5) -> str:
    idx = list(index)
    shown = ", ".join(str(i) for i in idx[:limit])
    return shown + (f" and {len(idx) - limit} more" if len(idx) > limit else "")


def numeric_column(frame: pd.DataFrame, col: str, positive: bool) -> np.ndarray:
    """Return ``frame[col]`` as float64, raising DataError for non-numeric, non-finite or
    (when ``positive``) zero/negative values, naming the offending rows."""
    raw = frame[col]
    if isinstance(raw, pd.DataFrame):
        raise DataError(f"column {col!r} appears more than once in the table: rename one")
    values = pd.to_numeric(raw, errors="coerce")
    bad = values.isna() & raw.notna()
    if bad.any():
        example = raw[bad].iloc[0]
        raise DataError(f"column {col!r} has non-numeric values (rows {_rows(frame.index[bad])}, "
                        f"e.g. {example!r}): fix or drop those rows")
    if pd.api.types.is_bool_dtype(raw.dtype) or not pd.api.types.is_numeric_dtype(raw.dtype):
        example = raw.dropna().iloc[0] if raw.notna().any() else None
        raise DataError(f"column {col!r} stores numbers as {raw.dtype} (e.g. {example!r}), not "
                        "as numbers: write the table with numeric columns (pandas: "
                        f"df[{col!r}] = pd.to_numeric(df[{col!r}]))")
    arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
    nonfinite = ~np.isfinite(arr)
    if nonfinite.any():
        raise DataError(f"column {col!r} has missing, NaN or infinite values in rows "
                        f"{_rows(frame.index[nonfinite])}: fix them or exclude the rows with "
                        f"where '{col} == {col}'")
    if positive and (arr <= 0).any():
        rows = frame.index[arr <= 0]
        extra = (" (D_f = 0 is the base model before finetuning, outside every power law)"
                 if col == "finetune_examples" else "")
        raise DataError(f"column {col!r} must be positive but {len(rows)} rows are <= 0 (rows "
                        f"{_rows(rows)}){extra}: exclude them with where '{col} > 0'")
    return arr


def selection_record(frame: pd.DataFrame, mask: np.ndarray) -> dict:
    """What an artefact stores of a row filter: the hash and length of the table it was applied
    to, and the kept row positions as ``[start, stop)`` runs (compact for contiguous rows)."""
    mask = np.asarray(mask, bool)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    kept = [[int(a), int(b)] for a, b in zip(edges[::2], edges[1::2])]
    return {"table_sha256": frame_sha256(frame), "rows": int(len(frame)), "kept": kept}


def check_selection_record(record) -> dict:
    """Validate a stored :func:`selection_record` (types, ranges, order); DataError if not."""
    ok = (isinstance(record, dict) and set(record) == {"table_sha256", "rows", "kept"}
          and isinstance(record["table_sha256"], str)
          and len(record["table_sha256"]) == 64
          and all(c in "0123456789abcdef" for c in record["table_sha256"])
          and isinstance(record["rows"], int) and not isinstance(record["rows"], bool)
          and record["rows"] >= 0 and isinstance(record["kept"], list))
    if ok:
        last = 0
        for run in record["kept"]:
            if not (isinstance(run, list) and len(run) == 2
                    and all(isinstance(v, int) and not isinstance(v, bool) for v in run)
                    and last <= run[0] < run[1] <= record["rows"]):
                ok = False
                break
            last = run[1]
    if not ok:
        raise DataError("bad row selection record (where_rows): expected {table_sha256, rows, "
                        "kept: [[start, stop], ...]} with increasing runs inside the table")
    return record


def select_recorded(frame: pd.DataFrame, record: dict) -> pd.DataFrame:
    """The rows of ``frame`` that a stored :func:`selection_record` kept; DataError when
    ``frame`` is not the table the record was made from (its hash differs)."""
    record = check_selection_record(record)
    if len(frame) != record["rows"] or frame_sha256(frame) != record["table_sha256"]:
        raise DataError("this runs table is not the one the fit filtered (its hash differs), so "
                        "the fitted rows cannot be selected again")
    idx = np.concatenate([np.arange(a, b) for a, b in record["kept"]] or [np.zeros(0, int)])
    return frame.iloc[idx]


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


def duplicate_rows(frame: pd.DataFrame, variables) -> np.ndarray:
    """(N,) True for rows that repeat an earlier row's configuration *and* seed (or, in a table
    without a ``seed`` column, its configuration): copies that averaging would count as seeds
    (or a fit would count as independent runs)."""
    keys = [c for c in dict.fromkeys([*CONFIG_COLUMNS, *variables, "seed"]) if c in frame.columns]
    if not keys:
        return np.zeros(len(frame), bool)
    return frame.duplicated(keys, keep="first").to_numpy()


def loss_trend(variables: np.ndarray, y: np.ndarray) -> str | None:
    """``"constant"`` when the loss does not vary, ``"rising"`` when it falls with none of the
    variables (Spearman correlation >= 0 with each), else None. A scaling law's loss falls with
    scale; neither case identifies its exponents."""
    y = np.asarray(y, np.float64)
    if len(y) < 2 or np.ptp(y) <= 1e-9 * max(float(np.max(np.abs(y))), 1e-300):
        return "constant"
    ry = _centred_ranks(y)
    for j in range(variables.shape[1]):
        v = variables[:, j]
        # the sign of the Spearman correlation: centred ranks are multiples of 1/2, so their
        # products and sums are exact (in any order)
        if np.ptp(v) > 0 and np.dot(_centred_ranks(v), ry) < 0:
            return None
    return "rising"


def _centred_ranks(v: np.ndarray) -> np.ndarray:
    """Ranks (ties: their mean rank) minus the mean rank."""
    order = np.argsort(v, kind="stable")
    sv = v[order]
    start = np.flatnonzero(np.concatenate([[True], sv[1:] != sv[:-1]]))
    end = np.append(start[1:], len(v))
    ranks = np.empty(len(v))
    ranks[order] = np.repeat((start + 1 + end) / 2.0, end - start)   # ranks start+1 .. end
    return ranks - (len(v) + 1) / 2.0


def default_by(frame: pd.DataFrame) -> list[str]:
    """The default grouping (``by``): every present column among task and method."""
    return [c for c in GROUP_COLUMNS if c in frame.columns]


# --- column specs: a column name, or ``@COL`` (per row, the column named in COL) ----------------
# Zhang et al. 2024's model-size, pretraining-size and PET-size series each use their own X: a
# joint fit reads X, per row, from the column that row's COL names.

def is_per_row(spec: str) -> bool:
    """True for an ``@COL`` spec (the column is named per row in COL)."""
    return spec.startswith("@")


def spec_column(spec: str) -> str:
    """The column a spec reads directly: ``COL`` for ``@COL``, else the spec itself."""
    return spec[1:] if is_per_row(spec) else spec


def column_for(spec: str, key: Mapping) -> str:
    """The column a spec reads for one group: for ``@COL`` the column named by the group's value
    of COL (``key[COL]``), else the spec itself.

    Parameters
    ----------
    spec : str
        Column name or ``@COL``.
    key : mapping
        A group's key (column -> value), e.g. ``GroupFit.key``.

    Returns
    -------
    str
    """
    return str(key.get(spec[1:], spec)) if is_per_row(spec) else spec


def resolve_columns(frame: pd.DataFrame, variables: Sequence[str],
                    default_columns: Mapping[str, str], given: Mapping[str, str | None],
                    y: str = "loss", joint: str | None = None) -> dict:
    """Columns of a law's variables (role -> column spec) and of the loss (``"y"``), checked to
    exist in ``frame``.

    Parameters
    ----------
    frame : DataFrame
    variables : sequence of str
        The law's variable roles (``Law.variables``).
    default_columns : mapping
        The law's default column of each role (``Law.default_columns``).
    given : mapping
        Role -> column asked for (None or "" keeps the default).
    y : str
        Loss column.
    joint : str, optional
        Subset column of a joint fit (checked too).

    Returns
    -------
    dict
        Role -> column spec (``@COL`` kept), and ``"y"``.
    """
    cols = dict(default_columns)
    for role in variables:
        if given.get(role):
            cols[role] = given[role]
    cols["y"] = y
    require_columns(frame, [spec_column(c) for c in cols.values()] + ([joint] if joint else []))
    return cols


def column_values(frame: pd.DataFrame, spec: str, zero_ok: bool = False) -> np.ndarray:
    """Values of a variable column as float64, checked positive and finite.

    Parameters
    ----------
    frame : DataFrame
    spec : str
        Column name, or ``@COL``: per row, the column named in COL.
    zero_ok : bool
        The law is defined at 0 (the rectified law's base-model row); negative values are refused
        all the same.

    Returns
    -------
    array (N,)
    """
    if not is_per_row(spec):
        return _variable(frame, spec, zero_ok)
    names = frame[spec[1:]].astype(str)
    require_columns(frame, sorted(set(names)), what=f"column (named in {spec[1:]!r})")
    out = np.empty(len(frame))
    for name in set(names):
        m = (names == name).to_numpy()
        out[m] = _variable(frame.loc[m], name, zero_ok)
    return out


def _variable(frame, col, zero_ok):
    if not zero_ok:
        return numeric_column(frame, col, positive=True)
    arr = numeric_column(frame, col, positive=False)
    if (arr < 0).any():
        numeric_column(frame.loc[arr < 0], col, positive=True)     # raises the one message
    return arr


def referenced_columns(frame: pd.DataFrame, specs: Sequence[str]) -> list[str]:
    """The columns that the ``@COL`` specs among ``specs`` name in ``frame``'s rows (in order of
    first appearance, no repeats)."""
    return list(dict.fromkeys(n for c in specs if is_per_row(c)
                              for n in frame[c[1:]].astype(str)))


# --- group keys: values compared as text (a key read back from JSON is text, a table's is not) --

def key_matches(key: Mapping, wanted: Mapping) -> bool:
    """True when a group's ``key`` has every ``wanted`` column value (compared as text, so that
    ``1`` matches ``"1"`` and a key read back from fit.json matches the table's).

    Parameters
    ----------
    key : mapping
        A group's key, e.g. ``GroupFit.key``.
    wanted : mapping
        Column -> value to match.

    Returns
    -------
    bool
    """
    return all(str(key.get(k)) == str(v) for k, v in wanted.items())


def rows_matching(frame: pd.DataFrame, wanted: Mapping) -> np.ndarray:
    """(N,) True for the rows of ``frame`` whose columns have the ``wanted`` values (compared as
    text, like :func:`key_matches`)."""
    m = np.ones(len(frame), bool)
    for k, v in wanted.items():
        m &= frame[k].astype(str).to_numpy() == str(v)
    return m

"""Figures (matplotlib): fits, critical data sizes, probability of superiority, backtests,
compute-optimal frontiers and suggested batches. Every function takes results (or their JSON
documents) and a directory, writes PNG and PDF files and returns their paths. Nothing here fits
anything; fitting code never plots.

- ``plot_fit``: loss against D per group (one panel per group), the runs as points and the fitted
  curve with its interval band for each value of X (one colour per X); held-out runs, when given,
  as open markers.
- ``plot_critical``: critical data size D* against X per group, with its interval, the measured D
  ranges of both methods shaded, the constant-gap closed form dashed; and the probability that
  method a is better against D, one line per X.
- ``plot_backtest``: Delta_h per group and law (bars) and, per law, the fit panels with held-out
  runs marked.
- ``plot_optimal``: the compute-optimal frontier of a Chinchilla-law fit.
- ``plot_suggestion``: the expected width as a suggested batch grows, and where its runs lie.

Functions that draw a panel per group take ``progress`` (:mod:`lawfit.progress`): the panels are
a counted stage (a bar with counts and ETA on a terminal, a line per stage otherwise).

Figures are built as ``matplotlib.figure.Figure`` objects and saved through their own canvas, so
no backend is needed and none is chosen: importing this module imports no matplotlib at all and
leaves pyplot and the user's backend alone. Files are written atomically
(``lawfit.io.files.atomic_write``).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lawfit.errors import DataError
from lawfit.problem import Status
from lawfit.progress import Progress, counted
from lawfit.table import column_for, rows_matching, select_recorded

if TYPE_CHECKING:        # types only: importing them here would import the engines
    from lawfit.analysis.backtest import Backtest
    from lawfit.analysis.critical import CriticalResult
    from lawfit.analysis.optimal import OptimalResult
    from lawfit.analysis.suggest import Suggestion
    from lawfit.result import FitResult

__all__ = ["FORMATS", "crossing_series", "plot_backtest", "plot_critical", "plot_fit",
           "plot_optimal", "plot_suggestion", "plot_superiority"]

FORMATS = ("png", "pdf")
PANELS_PER_PAGE = 12
NCOLS = 3


def _figure(figsize):
    """A figure that belongs to no pyplot state and needs no backend (it is drawn by the Agg,
    PDF or SVG canvas matching the format it is saved in)."""
    from matplotlib.figure import Figure
    return Figure(figsize=figsize)


def _colours(cmap: str, n: int) -> np.ndarray:
    from matplotlib import colormaps
    return colormaps[cmap](np.linspace(0.05, 0.9, n))


def _save(fig, out_dir: Path, name: str, formats=FORMATS, *, tight: bool = True) -> list[Path]:
    from lawfit.io.files import atomic_write
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in formats:
        p = out_dir / f"{name}.{ext}"
        atomic_write(p, lambda tmp, ext=ext: fig.savefig(
            tmp, format=ext, dpi=110 if ext == "png" else None,
            bbox_inches="tight" if tight else None))
        paths.append(p)
    return paths


def _pages(items, per_page=PANELS_PER_PAGE):
    return [items[i:i + per_page] for i in range(0, len(items), per_page)] or [[]]


def _grid(n: int, width: float = 4.6):
    ncols = min(NCOLS, max(n, 1))
    nrows = max(1, math.ceil(n / ncols))
    fig = _figure((width * ncols, 3.4 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()


def _title(key: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in key.items()) or "all runs"


def _sci(v: float) -> str:
    return f"{v:.3g}"


def _group_rows(frame: pd.DataFrame, key: dict) -> np.ndarray:
    return rows_matching(frame, {k: v for k, v in key.items() if k in frame.columns})


def _column(frame: pd.DataFrame, spec: str, key: dict) -> np.ndarray:
    col = column_for(spec, key)
    if col not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[col], errors="coerce").to_numpy(np.float64)


def _fit_panel(ax, g, xcol: str, dcol: str, ycol: str, frame: pd.DataFrame | None,
               heldout: np.ndarray | None, level: float, cmap="viridis"):
    """One group: runs and fitted curves with bands, one colour per X value (a law of D alone,
    e.g. power or rectified: one curve)."""
    xs = []
    px = pd_ = py = ph = None
    one = len(g.law.variables) == 1
    drole = g.law.variables[0] if one else "d"
    if frame is not None and len(frame):
        m = _group_rows(frame, g.key)
        pd_ = _column(frame, dcol, g.key)[m]
        px = np.ones(len(pd_)) if one else _column(frame, xcol, g.key)[m]
        py = pd.to_numeric(frame.loc[m, ycol], errors="coerce").to_numpy(np.float64)
        ph = heldout[m] if heldout is not None else np.zeros(m.sum(), bool)
        ok = np.isfinite(px) & np.isfinite(pd_) & np.isfinite(py) & (pd_ > 0) & (px > 0)
        px, pd_, py, ph = px[ok], pd_[ok], py[ok], ph[ok]
        xs = sorted(set(px))
    if not xs and one:
        xs = [1.0]
    if not xs:    # no data: curves at the ends and middle of the fitted X range
        lo, hi = g.ranges["x"]
        xs = sorted(set(np.geomspace(lo, hi, 3))) if hi > lo else [lo]
    d_lo, d_hi = g.ranges[drole]
    if pd_ is not None and len(pd_):
        d_lo, d_hi = min(d_lo, pd_.min()) if d_lo > 0 else pd_.min(), max(d_hi, pd_.max())
    if not d_lo > 0:       # base-model rows (D = 0) are not drawn on the log axis
        d_lo = d_hi / 1e4
    dgrid = np.geomspace(d_lo / 1.5, d_hi * 1.5, 120)
    colours = _colours(cmap, len(xs))
    q = (1 - level) / 2
    for x, c in zip(xs, colours):
        v = dgrid[:, None] if one else np.column_stack([np.full(len(dgrid), x), dgrid])
        ax.plot(dgrid, g.loss(v), color=c, lw=1.5, label=None if one else _sci(x))
        ld = g.loss_draws(v)
        if len(ld):
            lo, hi = np.quantile(ld, [q, 1 - q], axis=0)
            ax.fill_between(dgrid, lo, hi, color=c, alpha=0.2, lw=0)
        if px is not None:
            m = np.isclose(px, x, rtol=1e-9)
            ax.scatter(pd_[m & ~ph], py[m & ~ph], s=14, color=c, zorder=3)
            if (m & ph).any():
                ax.scatter(pd_[m & ph], py[m & ph], s=34, facecolors="none", edgecolors=c,
                           linewidths=1.4, zorder=4, marker="D")
    ax.axvspan(max(g.ranges[drole][0], d_lo), g.ranges[drole][1], color="0.92", zorder=0, lw=0)
    ax.set_xscale("log")
    ax.set_xlabel(dcol)
    ax.set_ylabel(ycol)
    extra = "" if g.status == Status.CONVERGED else f" [{g.status}]"
    if g.frozen:      # frozen parameters are labelled, never shown as estimated
        extra += "\nfrozen: " + ", ".join(f"{k}={v:.4g}" for k, v in g.frozen.items())
    ax.set_title(_title(g.key) + extra, fontsize=9)
    if not one:
        ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False,
                  title="X", title_fontsize=6)


def plot_fit(result: FitResult, frame: pd.DataFrame | None, out_dir: str | Path, *,
             heldout: np.ndarray | None = None, name: str = "fit",
             formats: Sequence[str] = FORMATS, progress: Progress | None = None) -> list[Path]:
    """Loss against D per group with fitted curves and interval bands (one line per X value).
    The grey band is the fitted D range. Writes NAME.png/.pdf (NAME-2... for more than 12
    groups).

    Parameters
    ----------
    result : FitResult
        The fit.
    frame : pandas.DataFrame or None
        The runs (None: curves only); for a fit filtered with ``where``, the table it was fitted
        on, whose fitted rows are selected again from the positions the fit recorded (the stored
        expression is never evaluated).
    out_dir : str or Path
        Directory for the figures.
    heldout : numpy.ndarray, optional
        (len(frame),) mask of held-out runs, drawn as open diamonds.
    name, formats
        File name stem and formats (png, pdf, svg).
    progress : Progress, optional
        Told of the panels drawn (one per group).

    Returns
    -------
    list of Path
        The files written.
    """
    out_dir = Path(out_dir)
    if len(result.law.variables) == 1:         # a law of D alone (power, rectified)
        xcol, dcol = None, result.columns[result.law.variables[0]]
    else:
        xcol, dcol = result.columns["x"], result.columns["d"]
    ycol = result.columns["y"]
    if frame is not None:
        frame = frame.reset_index(drop=True)
        settings = result.settings or {}
        if settings.get("where") and heldout is None:
            if not settings.get("where_rows"):
                raise DataError("the fit was filtered with --where but records no fitted rows "
                                "(an older fit.json): draw it without the runs table")
            frame = select_recorded(frame, settings["where_rows"]).reset_index(drop=True)
        if heldout is not None and len(heldout) != len(frame):
            raise DataError("heldout mask and runs table differ in length")
    paths = []
    groups = list(result.groups)
    if not groups:
        raise DataError("the fit has no groups to plot")
    with counted(progress, f"drawing {name}", len(groups), unit="panel") as advance:
        for i, page in enumerate(_pages(groups)):
            fig, axes = _grid(len(page), width=5.4)
            for ax, g in zip(axes, page):
                _fit_panel(ax, g, xcol, dcol, ycol, frame, heldout, result.level)
            fig.suptitle(f"{result.law.name}: {result.law.formula}"
                         + ("; open diamonds: held out" if heldout is not None else "")
                         + f"; bands: {result.level:.0%} "
                         + (groups[0].interval_method or "no interval"), fontsize=10)
            fig.tight_layout()
            paths += _save(fig, out_dir, name if i == 0 else f"{name}-{i + 1}", formats)
            advance(len(page))
    return paths


# --- critical data sizes -------------------------------------------------------------------

def _critical_doc(critical) -> dict:
    return critical if isinstance(critical, dict) else critical.to_dict()


def crossing_series(rows: Sequence[dict]) -> dict:
    """The lines of the critical-size figure: crossings joined across X by their direction.

    Parameters
    ----------
    rows : sequence of dict
        critical.json rows of one panel (one task / factor), each with ``x`` and
        ``crossings`` (ascending in D, each with ``better_below``).

    Returns
    -------
    dict
        ``(better_below, k) -> [(x, crossing), ...]`` ascending in x: the k-th crossing below
        which ``better_below`` wins at each X, joined with the k-th such crossing at the other X
        values. A crossing is never joined with one that goes the other way, whatever its index
        among all roots (where a second root appears, indices shift).
    """
    series: dict = {}
    for r in sorted(rows, key=lambda r: r["x"]):
        seen: dict = {}
        for c in r["crossings"]:
            k = seen.get(c["better_below"], 0)
            seen[c["better_below"]] = k + 1
            series.setdefault((c["better_below"], k), []).append((r["x"], c))
    return dict(sorted(series.items()))


def plot_critical(critical: CriticalResult | dict, out_dir: str | Path, *, name: str = "critical",
                  formats: Sequence[str] = FORMATS, progress: Progress | None = None) -> list[Path]:
    """D* against X per group (and X column), interval as error bars (arrows where the interval
    reaches past the searched range), measured D ranges of both methods shaded, the closed form
    dashed; plus the probability-of-superiority figure (when there are draws).

    Parameters
    ----------
    critical : CriticalResult or dict
        The result or its critical.json document.
    out_dir : str or Path
        Directory for the figures.
    name, formats
        File name stem and formats.
    progress : Progress, optional
        Told of the panels drawn (one per group and X column).

    Returns
    -------
    list of Path
        The files written.
    """
    doc = _critical_doc(critical)
    a, b = doc["between"]
    out_dir = Path(out_dir)
    panels: dict = {}
    for r in doc["rows"]:
        k = (tuple(sorted(r["key"].items())), r.get("x_name", doc["x_name"]))
        panels.setdefault(k, []).append(r)
    if not panels:
        raise DataError("the critical-size result has no rows to plot")
    dmin, dmax = doc["search"]["d_min"], doc["search"]["d_max"]
    paths = []
    with counted(progress, f"drawing {name}", len(panels), unit="panel") as advance:
        for pi, page in enumerate(_pages(list(panels.items()))):
            fig, axes = _grid(len(page), width=6.4)
            for ax, ((key, xname), rows) in zip(axes, page):
                rows = sorted(rows, key=lambda r: r["x"])
                xs = np.array([r["x"] for r in rows])
                ma = rows[0]["d_measured"][a]
                mb = rows[0]["d_measured"][b]
                ax.axhspan(*ma, color="tab:blue", alpha=0.12, lw=0, label=f"{a} measured D")
                ax.axhspan(*mb, color="tab:orange", alpha=0.12, lw=0, label=f"{b} measured D")
                markers = ["o", "s", "^", "v"]
                for j, ((below, k), pts) in enumerate(crossing_series(rows).items()):
                    x = np.array([p[0] for p in pts])
                    d = np.array([p[1]["d"] for p in pts])
                    # a bound past the searched range is drawn to the edge; no draws: no bar
                    lo = np.array([p[1]["lo"] if p[1]["lo"] is not None else
                                   (dmin if p[1]["lo_beyond_range"] else p[1]["d"]) for p in pts])
                    hi = np.array([p[1]["hi"] if p[1]["hi"] is not None else
                                   (dmax if p[1]["hi_beyond_range"] else p[1]["d"]) for p in pts])
                    lab = f"{below} better below" + (f" (crossing {k + 1})" if k else "")
                    ax.errorbar(x, d, yerr=[d - lo, hi - d], fmt=markers[j % 4] + "-", capsize=3,
                                color=f"C{j + 2}", label=lab + f" ({doc['level']:.0%} interval)")
                    beyond = [p[1]["hi_beyond_range"] or p[1]["lo_beyond_range"] for p in pts]
                    for xx, dd, bb in zip(x, d, beyond):
                        if bb:
                            ax.annotate("past range", (xx, dd), fontsize=6, xytext=(3, 3),
                                        textcoords="offset points")
                cf = [(r["x"], r["closed_form"]["d"]) for r in rows
                      if r.get("closed_form") and r["closed_form"].get("d")]
                if cf:
                    ax.plot([c[0] for c in cf], [c[1] for c in cf], "k--", lw=1,
                            label="closed form (constant gap E_a=E_b)")
                for r in rows:
                    if not r["crossings"]:
                        ax.annotate(f"no crossing\n({r['better_everywhere']} better)", (r["x"], dmin),
                                    fontsize=6, ha="center", va="bottom", rotation=90,
                                    xytext=(0, 4), textcoords="offset points")
                ax.set_xscale("log")
                ax.set_yscale("log")
                ax.set_ylim(dmin, dmax)
                ax.set_xlim(xs.min() / 1.5, xs.max() * 1.5)
                ax.set_xlabel(xname)
                ax.set_ylabel(f"critical {doc['d_name']}")
                ax.set_title(_title(dict(key)) + f": {a} vs {b}", fontsize=9)
                ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
            fig.tight_layout()
            paths += _save(fig, out_dir, name if pi == 0 else f"{name}-{pi + 1}", formats)
            advance(len(page))
    sup = pd.DataFrame(doc.get("superiority") or [])
    col = f"p_{a}_better"
    if col in sup and sup[col].notna().any():      # needs draws; skipped without them
        paths += plot_superiority(doc, out_dir, formats=formats,
                                  name="superiority" if name == "critical"
                                  else f"{name}_superiority")
    return paths


def plot_superiority(critical: CriticalResult | dict, out_dir: str | Path, *,
                     name: str = "superiority", formats: Sequence[str] = FORMATS) -> list[Path]:
    """P(method a has the lower loss) against D, one line per X, one panel per group.

    Parameters
    ----------
    critical : CriticalResult or dict
        The result or its critical.json document (with draws).
    out_dir : str or Path
        Directory for the figures.
    name, formats
        File name stem and formats.

    Returns
    -------
    list of Path
        The files written.
    """
    doc = _critical_doc(critical)
    a, b = doc["between"]
    tab = pd.DataFrame(doc["superiority"])
    col = f"p_{a}_better"
    if tab.empty or col not in tab or tab[col].isna().all():
        raise DataError("no probability-of-superiority table with draws to plot (fit with "
                        "--bootstrap N or a Bayesian fitter)")
    keys = [c for c in tab.columns if c not in {"x", "d", col, f"loss_{a}", f"loss_{b}",
                                                "diff", "diff_lo", "diff_hi", "n_draws",
                                                "extrapolated"}]
    groups = list(tab.groupby(keys, sort=False)) if keys else [((), tab)]
    paths = []
    for pi, page in enumerate(_pages(groups)):
        fig, axes = _grid(len(page), width=5.6)
        for ax, (k, sub) in zip(axes, page):
            xs = sorted(sub["x"].unique())
            colours = _colours("viridis", len(xs))
            kd = dict(zip(keys, k if isinstance(k, tuple) else (k,)))
            meas = next((r["d_measured"] for r in doc["rows"]
                         if all(str(r["key"].get(kk)) == str(vv) for kk, vv in kd.items())), None)
            if meas:
                ax.axvspan(*meas[a], color="tab:blue", alpha=0.12, lw=0,
                           label=f"{a} measured D")
                ax.axvspan(*meas[b], color="tab:orange", alpha=0.12, lw=0,
                           label=f"{b} measured D")
            for x, c in zip(xs, colours):
                s = sub[sub["x"] == x].sort_values("d")
                ax.plot(s["d"], s[col], "-", color=c, label=f"X={_sci(x)}")
            ax.axhline(0.5, color="0.5", lw=0.8, ls=":")
            ax.set_xscale("log")
            ax.set_ylim(-0.03, 1.03)
            ax.set_xlabel(doc["d_name"])
            ax.set_ylabel(f"P({a} better than {b})")
            ax.set_title(_title(kd) + f": share of draws with {a} lower", fontsize=9)
            ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
        fig.tight_layout()
        paths += _save(fig, out_dir, name if pi == 0 else f"{name}-{pi + 1}", formats)
    return paths


# --- backtests -----------------------------------------------------------------------------

def plot_backtest(bt: Backtest, out_dir: str | Path, *, name: str = "backtest",
                  formats: Sequence[str] = FORMATS, panels: bool = True,
                  progress: Progress | None = None) -> list[Path]:
    """Delta_e and Delta_h per group and law (bars: NAME) and, with ``panels``, per law the
    fitted curves with the held-out runs marked (NAME_LAW).

    Parameters
    ----------
    bt : Backtest
        The backtest.
    out_dir : str or Path
        Directory for the figures.
    name, formats
        File name stem and formats.
    panels : bool
        Also draw each law's fit panels.
    progress : Progress, optional
        Told of the fit panels drawn (one stage per law).

    Returns
    -------
    list of Path
        The files written.
    """
    out_dir = Path(out_dir)
    s = bt.summary
    if s.empty:
        raise DataError("the backtest has no groups to plot")
    keys = [c for c in bt.group_columns if c in s.columns]
    labels = list(dict.fromkeys(s[keys].astype(str).agg(", ".join, axis=1))) if keys else ["all"]
    fig = _figure((max(5.0, 1.1 * len(labels) * len(bt.laws) / 2 + 3), 3.6))
    ax = fig.subplots()
    width = 0.8 / len(bt.laws)
    pos = np.arange(len(labels))
    for i, law in enumerate(bt.laws):
        sl = s[s["law"] == law]
        lab = sl[keys].astype(str).agg(", ".join, axis=1).tolist() if keys else ["all"]
        vals = dict(zip(lab, sl["delta_h"]))
        vals_e = dict(zip(lab, sl["delta_e"]))
        ax.bar(pos + i * width, [vals.get(lb, np.nan) for lb in labels], width,
               color=f"C{i}", label=f"{law}: Delta_h")
        ax.scatter(pos + i * width, [vals_e.get(lb, np.nan) for lb in labels], marker="_",
                   s=200, color="k", zorder=3, label="Delta_e (fitted runs)" if i == 0 else None)
    ax.set_xticks(pos + width * (len(bt.laws) - 1) / 2, labels, rotation=30, ha="right",
                  fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("mean |prediction - loss|")
    hold = bt.holdout if isinstance(bt.holdout, str) else ", ".join(
        f"{k}={':'.join(f'{v:g}' for v in vals)}" for k, vals in bt.holdout.items())
    ax.set_title(f"held out: {hold}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths = _save(fig, out_dir, name, formats)
    runs = bt.runs
    for law in bt.laws if panels else ():
        r = runs[runs["law"] == law].reset_index(drop=True)
        res = bt.fits[law]
        # the runs table in the fit's own column names, so that plot_fit can read it
        frame = r.copy()
        xcol, dcol = res.columns["x"], res.columns["d"]
        for g in res.groups:
            m = _group_rows(frame, g.key)
            for spec, src in ((xcol, "x"), (dcol, "d")):
                col = column_for(spec, g.key)
                if col not in frame.columns:
                    frame[col] = np.nan
                frame.loc[m, col] = r.loc[m, src]
        frame[res.columns["y"]] = r["loss"]
        paths += plot_fit(res, frame, out_dir, heldout=r["heldout"].to_numpy(bool),
                          name=f"{name}_{law}", formats=formats, progress=progress)
    return paths


def plot_optimal(result: FitResult, opt: OptimalResult, out_dir: str | Path, *,
                 name: str = "optimal", formats: Sequence[str] = FORMATS,
                 compute_range: tuple[float, float] | None = None) -> list[Path]:
    """The compute-optimal frontier of a Chinchilla-law fit: N_opt and D_opt against compute C,
    with interval bands from the fit's draws, the requested budgets marked, one panel per group.

    Parameters
    ----------
    result : FitResult
        The Chinchilla-law fit.
    opt : OptimalResult
        Its allocations at the requested budgets.
    out_dir : str or Path
        Directory for the figure.
    name, formats
        File name stem and formats.
    compute_range : (float, float), optional
        Compute range of the frontier (default: the budgets / 1e3 to x 1e3).

    Returns
    -------
    list of Path
        The files written.
    """
    from lawfit.analysis.optimal import optimal
    budgets = sorted({r["compute"] for r in opt.rows})
    lo, hi = compute_range or (min(budgets) / 1e3, max(budgets) * 1e3)
    grid = np.geomspace(lo, hi, 60)
    frontier = optimal(result, grid, flops_per_param_token=opt.flops_per_param_token,
                       level=opt.level)
    groups = list(result.groups)
    fig, axes = _grid(len(groups))
    for ax, g in zip(axes, groups):
        rows = [r for r in frontier.rows if r["key"] == g.key]
        for what, label, colour in (("model_params", "N_opt (parameters)", "C0"),
                                    ("tokens", "D_opt (tokens)", "C1")):
            est = np.array([r[what]["estimate"] or np.nan for r in rows], float)
            ax.plot(grid, est, color=colour, lw=1.5, label=label)
            blo = np.array([np.nan if r[what]["lo"] is None else r[what]["lo"] for r in rows])
            bhi = np.array([np.nan if r[what]["hi"] is None else r[what]["hi"] for r in rows])
            if np.isfinite(blo).any():
                ax.fill_between(grid, blo, bhi, color=colour, alpha=0.2, lw=0)
        for r in opt.rows:
            if r["key"] == g.key:
                ax.axvline(r["compute"], color="0.5", lw=0.8, ls="--")
                tpp = r["tokens_per_param"]
                ax.annotate(f"{_sci(r['compute'])} FLOP: {tpp['estimate']:.3g} tokens/param",
                            (r["compute"], r["model_params"]["estimate"]), fontsize=6,
                            xytext=(3, -10), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"compute C (FLOP, C = {opt.flops_per_param_token:g} N D)")
        ax.set_ylabel("compute-optimal size")
        ax.set_title(_title(g.key), fontsize=9)
        ax.legend(fontsize=6, frameon=False)
    return _save(fig, Path(out_dir), name, formats)


# --- suggested batches ---------------------------------------------------------------------

def plot_suggestion(res: Suggestion, out_dir: str | Path, *, name: str = "suggest",
                    formats: Sequence[str] = ("png",)) -> list[Path]:
    """The expected width as the batch grows, and where the candidates and picks lie (X against
    D per group, colour: expected width after adding that run alone; picks circled, numbered in
    the order picked).

    Parameters
    ----------
    res : lawfit.analysis.suggest.Suggestion
        The suggested batch.
    out_dir : str or Path
        Directory for the figure.
    name, formats
        File name stem and formats (default ``suggest.png``).

    Returns
    -------
    list of Path
        The files written.
    """
    cols = res.settings["columns"]
    xcol, dcol = cols["x"], cols["d"]
    groups = list(dict.fromkeys(tuple((k, str(v)) for k, v in row.items())
                                for row in res.candidates[list(res.settings["by"])]
                                .to_dict("records")))
    fig = _figure((4.2 * (1 + len(groups)), 3.8))
    axes = fig.subplots(1, 1 + max(len(groups), 1), squeeze=False)[0]
    ax = axes[0]
    steps = np.arange(len(res.runs) + 1)
    widths = [res.width_now, *res.runs["width_after"].tolist()]
    ax.plot(steps, widths, "o-")
    ax.set_xlabel("runs added (in the order picked)")
    ax.set_ylabel(f"expected {res.level:.0%} interval width ({res.unit})")
    ax.set_ylim(bottom=0)
    ax.set_title("expected width")
    cand = res.candidates
    vmin, vmax = float(cand["width_alone"].min()), float(cand["width_alone"].max())
    for ax, key in zip(axes[1:], groups):
        c = cand[_group_rows(cand, dict(key))]
        sc = ax.scatter(c[dcol], c[xcol], c=c["width_alone"], cmap="viridis_r", vmin=vmin,
                        vmax=vmax if vmax > vmin else vmin + 1e-12, s=30)
        r = res.runs
        for _, row in r[_group_rows(r, dict(key))].iterrows():
            ax.scatter([row[dcol]], [row[xcol]], s=160, facecolors="none", edgecolors="red")
            ax.annotate(str(int(row["order"])), (row[dcol], row[xcol]), color="red",
                        xytext=(5, 5), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(dcol)
        ax.set_ylabel(xcol)
        ax.set_title(", ".join(v for _, v in key), fontsize=9)
        fig.colorbar(sc, ax=ax, label="width after this run alone")
    fig.suptitle(f"lawfit suggest: {res.target['kind']} target (picks circled, in order)",
                 fontsize=10)
    fig.tight_layout()
    return _save(fig, Path(out_dir), name, formats, tight=False)

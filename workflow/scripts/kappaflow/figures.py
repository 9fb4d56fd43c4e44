"""Paper figures: loss curves, parity plots, MAPE heatmap, step bar chart, AGL vs ab-initio scatter.

Every function takes tidy frames and writes the figure as PNG and PDF next to each other
(``save(fig, path)`` with ``path`` ending in ``.png`` or without a suffix).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import NullFormatter

from kappaflow.evaluation.tables import SET_ORDER, STEP_LABELS, STEP_ORDER
from kappaflow.protocol import unphysical

STEP_COLORS = {"I": "#4c72b0", "II": "#dd8452", "III": "#55a868", "RF": "#8c8c8c"}


def save(fig: plt.Figure, path: str | Path) -> list[Path]:
    """Write ``fig`` as ``<stem>.png`` (200 dpi) and ``<stem>.pdf``; close it; return both paths."""
    stem = Path(path).with_suffix("")
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    fig.savefig(paths[0], dpi=200, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    plt.close(fig)
    return paths


def _present(values: Sequence[str], order: Sequence[str]) -> list[str]:
    present = set(values)
    return [v for v in order if v in present] + sorted(present - set(order))


def loss_curves(history: pd.DataFrame, path: str | Path) -> list[Path]:
    """Training (solid) and validation (dashed) loss per epoch; one panel per step × training set.

    ``history``: ``step, train_on, run, epoch, train_loss, val_loss``.
    """
    steps = _present(history["step"], STEP_ORDER)
    sets = _present(history["train_on"], SET_ORDER)
    fig, axes = plt.subplots(
        len(steps), len(sets), figsize=(3.2 * len(sets), 2.6 * len(steps)), squeeze=False, sharex=True
    )
    for i, step in enumerate(steps):
        for j, train_on in enumerate(sets):
            ax = axes[i][j]
            part = history[(history["step"] == step) & (history["train_on"] == train_on)]
            if part.empty:
                ax.set_axis_off()
                continue
            for _, run in part.groupby("run"):
                run = run.sort_values("epoch")
                ax.plot(run["epoch"], run["train_loss"], color=STEP_COLORS.get(step, "k"), lw=0.8, alpha=0.7)
                ax.plot(run["epoch"], run["val_loss"], color="k", lw=0.8, alpha=0.7, ls="--")
            ax.set_title(f"step {step}, {train_on}", fontsize=9)
            if np.nanmin(part[["train_loss", "val_loss"]].to_numpy()) > 0:
                ax.set_yscale("log")
            if j == 0:
                ax.set_ylabel("loss (MAPE on κ)")
            if i == len(steps) - 1:
                ax.set_xlabel("epoch")
    handles = [plt.Line2D([], [], color="0.4", lw=1), plt.Line2D([], [], color="k", lw=1, ls="--")]
    fig.legend(handles, ["training", "validation"], loc="upper right", fontsize=8)
    fig.tight_layout()
    return save(fig, path)


def parity(predictions: pd.DataFrame, path: str | Path, test_sets: Sequence[str] = ("Dataset1", "Dataset2", "MIX")) -> list[Path]:
    """Predicted vs true κ (log axes) of models trained and tested on the same set, all ok runs pooled.

    One row per step, one column per test set; ``predictions`` as in ``results/tables/predictions.parquet``.
    """
    data = predictions[(predictions["train_on"] == predictions["test_on"]) & (predictions["status"] == "ok")]
    data = data[data["test_on"].isin(test_sets)]
    steps = _present(data["step"], STEP_ORDER) or ["I"]
    sets = [s for s in test_sets if s in set(data["test_on"])] or list(test_sets)
    fig, axes = plt.subplots(len(steps), len(sets), figsize=(3.2 * len(sets), 3.2 * len(steps)), squeeze=False)
    for i, step in enumerate(steps):
        for j, test_on in enumerate(sets):
            ax = axes[i][j]
            part = data[(data["step"] == step) & (data["test_on"] == test_on)]
            ax.set_title(f"{STEP_LABELS.get(step, step)}: {test_on}", fontsize=9)
            ax.set_xscale("log")
            ax.set_yscale("log")
            for axis in (ax.xaxis, ax.yaxis):
                axis.set_minor_formatter(NullFormatter())
            if part.empty:
                ax.text(0.5, 0.5, "no runs", transform=ax.transAxes, ha="center")
                continue
            true = part["kappa_true"].to_numpy(float)
            pred = part["kappa_pred"].to_numpy(float)
            bad = unphysical(pred)
            ax.scatter(true[~bad], pred[~bad], s=8, alpha=0.5, color=STEP_COLORS.get(step, "k"), edgecolors="none")
            lo = min(true.min(), pred[~bad].min(initial=np.inf)) / 1.5
            hi = max(true.max(), pred[~bad].max(initial=0.0)) * 1.5
            if bad.any():  # a log axis cannot show κ ≤ 0: mark them at its floor, never clip silently
                ax.scatter(true[bad], np.full(int(bad.sum()), lo * 1.2), s=16, marker="v", color="red",
                           label=f"κ_pred ≤ 0 W/mK: {int(bad.sum())} (at the floor)")
                ax.legend(loc="lower right", fontsize=7, frameon=False)
            ax.plot([lo, hi], [lo, hi], color="k", lw=0.8)
            ax.set_xlim(lo, hi)
            ax.set_ylim(lo, hi)
            mape = float(np.mean(np.abs(pred - true) / true))
            ax.text(0.04, 0.92, f"MAPE {mape:.2f}\n{part['run'].nunique()} runs", transform=ax.transAxes,
                    fontsize=8, va="top")
            if j == 0:
                ax.set_ylabel("predicted κ (W/mK)")
            if i == len(steps) - 1:
                ax.set_xlabel("true κ (W/mK)")
    fig.tight_layout()
    return save(fig, path)


def mape_heatmap(table: pd.DataFrame, path: str | Path) -> list[Path]:
    """Heatmap of the MAPE table (rows: step × training set, columns: test sets), cells annotated."""
    steps = _present(table["step"], STEP_ORDER)
    sets = _present(table["test_on"], SET_ORDER)
    rows = [(s, t) for s in steps for t in _present(table.loc[table["step"] == s, "train_on"], SET_ORDER)]
    grid = np.full((len(rows), len(sets)), np.nan)
    index = table.set_index(["step", "train_on", "test_on"])
    for r, (step, train_on) in enumerate(rows):
        for c, test_on in enumerate(sets):
            if (step, train_on, test_on) in index.index:
                grid[r, c] = index.loc[(step, train_on, test_on), "mape_mean"]
    fig, ax = plt.subplots(figsize=(1.4 * len(sets) + 2.5, 0.42 * len(rows) + 1.2))
    finite = grid[np.isfinite(grid)]
    vmax = float(np.percentile(finite, 95)) if finite.size else 1.0
    image = ax.imshow(grid, cmap="viridis_r", vmin=0, vmax=max(vmax, 1e-6), aspect="auto")
    for r in range(len(rows)):
        for c in range(len(sets)):
            value = grid[r, c]
            text = "—" if not np.isfinite(value) else f"{value:.2f}"
            ax.text(c, r, text, ha="center", va="center", fontsize=8,
                    color="white" if np.isfinite(value) and value > 0.6 * vmax else "black")
    ax.set_xticks(range(len(sets)), sets)
    ax.set_yticks(range(len(rows)), [f"{STEP_LABELS.get(s, s)} · {t}" for s, t in rows], fontsize=8)
    ax.set_xlabel("test set")
    ax.xaxis.set_label_position("top")
    ax.xaxis.tick_top()
    fig.colorbar(image, ax=ax, label="MAPE (mean over runs)")
    fig.tight_layout()
    return save(fig, path)


def step_bars(table: pd.DataFrame, path: str | Path) -> list[Path]:
    """MAPE mean ± std of each step per training set; one panel per test set, each with its own y scale.

    The error bars stop at zero (MAPE is never negative).
    """
    steps = _present(table["step"], STEP_ORDER)
    train_sets = _present(table["train_on"], SET_ORDER)
    test_sets = _present(table["test_on"], SET_ORDER)
    width = 0.8 / max(len(steps), 1)
    fig, axes = plt.subplots(1, len(test_sets), figsize=(3.6 * len(test_sets), 3.2), squeeze=False)
    index = table.set_index(["step", "train_on", "test_on"])
    for ax, test_on in zip(axes[0], test_sets, strict=True):
        for k, step in enumerate(steps):
            means, stds = [], []
            for train_on in train_sets:
                key = (step, train_on, test_on)
                means.append(index.loc[key, "mape_mean"] if key in index.index else np.nan)
                stds.append(index.loc[key, "mape_std"] if key in index.index else np.nan)
            x = np.arange(len(train_sets)) + (k - (len(steps) - 1) / 2) * width
            means, stds = np.asarray(means, dtype=float), np.nan_to_num(np.asarray(stds, dtype=float))
            errors = np.vstack([np.minimum(stds, np.nan_to_num(means)), stds])
            ax.bar(x, means, width, yerr=errors, capsize=2, color=STEP_COLORS.get(step, "k"),
                   label=STEP_LABELS.get(step, step))
        ax.set_xticks(range(len(train_sets)), train_sets, fontsize=8)
        ax.set_title(f"test on {test_on}", fontsize=9)
        ax.set_xlabel("training set")
    axes[0][0].set_ylabel("MAPE, mean (std) over runs")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    return save(fig, path)


def agl_vs_abinitio(matches: pd.DataFrame, path: str | Path, agl: str = "kappa_agl_wmk",
                    abinitio: str = "kappa_hq_wmk", hue: str | None = "hq_dataset") -> list[Path]:
    """AFLOW AGL κ against the ab-initio κ of the same material (log axes), one colour per data set.

    ``matches``: ``results/matching/aflow_hq_matches.csv`` (``kappaflow.matching.MATCH_COLUMNS``).
    """
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    ax.set_xscale("log")
    ax.set_yscale("log")
    if matches.empty:
        ax.text(0.5, 0.5, "no matched materials", transform=ax.transAxes, ha="center")
    else:
        groups = matches.groupby(hue) if hue and hue in matches.columns else [("matched", matches)]
        for name, part in groups:
            ax.scatter(part[abinitio], part[agl], s=14, alpha=0.7, label=f"{name} ({len(part)})")
        values = matches[[agl, abinitio]].to_numpy(float)
        values = values[np.isfinite(values) & (values > 0)]
        lo, hi = values.min() / 1.5, values.max() * 1.5
        ax.plot([lo, hi], [lo, hi], color="k", lw=0.8)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.legend(fontsize=8)
    ax.set_xlabel("ab-initio κ (W/mK)")
    ax.set_ylabel("AFLOW AGL κ (W/mK)")
    fig.tight_layout()
    return save(fig, path)


def draw(kind: str, source: str | Path, output: str | Path) -> list[Path]:
    """Draw figure ``kind`` from its input file (the rule's adapter)."""
    source = Path(source)
    data = pd.read_parquet(source) if source.suffix == ".parquet" else pd.read_csv(source)
    makers = {"loss_curves": loss_curves, "parity": parity, "mape_heatmap": mape_heatmap, "step_bars": step_bars,
              "agl_vs_abinitio": agl_vs_abinitio}
    if kind not in makers:
        raise ValueError(f"unknown figure {kind!r}; expected one of {sorted(makers)}")
    return makers[kind](data, output)

"""Figures of the run report, drawn with matplotlib's object API (no pyplot, so no global
backend state: the Agg canvas renders PNG bytes in any process, with or without a display).

Colours come from the Okabe-Ito palette, which stays distinguishable with the common forms of
colour blindness; operating points also differ by marker shape, so colour is never the only cue.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

OKABE_ITO = {
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
    "black": "#000000",
}
SCREEN_COLOURS = {"any_dr": OKABE_ITO["blue"], "referable": OKABE_ITO["vermillion"]}
# name -> (label, marker, colour) of the ROC operating points.
POINT_STYLES = {
    "chosen": ("chosen threshold (fitted on validation)", "o", OKABE_ITO["black"]),
    "youden": ("Youden (max sens + spec)", "s", OKABE_ITO["green"]),
    "high_sensitivity": ("high sensitivity (≥ 90%)", "^", OKABE_ITO["orange"]),
    "high_specificity": ("high specificity (≥ 90%)", "v", OKABE_ITO["purple"]),
}
FONT_SIZE = 11
DPI = 110


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _style(ax) -> None:
    ax.tick_params(labelsize=FONT_SIZE - 1)
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(True, color="#dddddd", linewidth=0.7)
    ax.set_axisbelow(True)


def figure_png(fig: Figure) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    # bbox_inches="tight" keeps legends placed outside the axes inside the picture.
    fig.savefig(buffer, format="png", dpi=DPI, facecolor="white", bbox_inches="tight", pad_inches=0.12)
    return buffer.getvalue()


def image_png(rgb: np.ndarray) -> bytes:
    """An RGB uint8 array as PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


# --------------------------------------------------------------------- learning curves
def epoch_table(log: pd.DataFrame) -> pd.DataFrame:
    """One row per epoch from a Lightning CSVLogger table (sparse rows: each logging call
    fills only its own columns): the last non-empty value of every column in that epoch.

    LearningRateMonitor rows carry a step but no epoch; they are logged at the start of an
    epoch, so they belong to the next row that has one (same or later step).
    """
    if "epoch" not in log.columns:
        raise ValueError(f"training log lacks the 'epoch' column; found {list(log.columns)}")
    if "step" in log.columns:
        log = log.sort_values("step", kind="stable")
    epoch = log["epoch"].bfill()
    log = log[epoch.notna()]
    return log.groupby(epoch[epoch.notna()].astype(int)).last().drop(columns=["epoch", "step"], errors="ignore")


def learning_curves_figure(epochs: pd.DataFrame, best_epoch: int | None = None) -> Figure | None:
    """Loss (train and validation), validation metrics and the learning rate per epoch.

    ``epochs`` is :func:`epoch_table`'s output. Returns None when there is nothing to draw.
    """
    loss_cols = [(c, label, colour) for c, label, colour in (
        ("train_loss_epoch", "training loss", OKABE_ITO["blue"]),
        ("val_loss", "validation loss", OKABE_ITO["vermillion"]),
    ) if c in epochs and epochs[c].notna().any()]
    metric_cols = [(c, label, colour) for c, label, colour in (
        ("val_kappa", "validation kappa (quadratic)", OKABE_ITO["green"]),
        ("val_auc_referable", "validation referable AUC", OKABE_ITO["orange"]),
        ("val_auc", "validation AUC", OKABE_ITO["orange"]),
    ) if c in epochs and epochs[c].notna().any()]
    if not metric_cols and "val_metric" in epochs and epochs["val_metric"].notna().any():
        metric_cols = [("val_metric", "validation metric", OKABE_ITO["green"])]
    lr_cols = [c for c in epochs.columns if c.startswith("lr-") and epochs[c].notna().any()]
    panels = [p for p in (loss_cols, metric_cols, lr_cols) if p]
    if not panels:
        return None

    fig = _figure(4.0 * len(panels), 3.4)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    x = epochs.index.to_numpy()
    marker = "o" if len(x) <= 30 else None
    i = 0
    for cols, title, ylabel in ((loss_cols, "Loss", "loss"), (metric_cols, "Validation metric", "value")):
        if not cols:
            continue
        ax = axes[i]
        for column, label, colour in cols:
            series = epochs[column]
            ok = series.notna().to_numpy()
            ax.plot(x[ok], series.to_numpy()[ok], marker=marker, markersize=4, color=colour, label=label)
        ax.set_title(title, fontsize=FONT_SIZE + 1)
        ax.set_ylabel(ylabel, fontsize=FONT_SIZE)
        i += 1
    if lr_cols:
        ax = axes[i]
        for column, colour in zip(lr_cols, (OKABE_ITO["purple"], OKABE_ITO["sky_blue"], OKABE_ITO["black"])):
            series = epochs[column]
            ok = series.notna().to_numpy()
            ax.plot(x[ok], series.to_numpy()[ok], marker=marker, markersize=4, color=colour,
                    label=column.removeprefix("lr-"))
        ax.set_title("Learning rate", fontsize=FONT_SIZE + 1)
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    for ax in axes:
        _style(ax)
        ax.set_xlabel("epoch", fontsize=FONT_SIZE)
        if len(x) <= 12:
            ax.set_xticks(x)
        if best_epoch is not None:
            ax.axvline(best_epoch, color="#777777", linestyle="--", linewidth=1)
        ax.legend(fontsize=FONT_SIZE - 2, frameon=False)
    if best_epoch is not None:
        axes[0].annotate("best checkpoint", xy=(best_epoch, 1.0), xycoords=("data", "axes fraction"),
                         xytext=(3, -12), textcoords="offset points", fontsize=FONT_SIZE - 2, color="#555555")
    return fig


# ------------------------------------------------------------------------ confusion
def confusion_figure(counts, labels: list[str], *, xlabel: str = "predicted grade",
                     ylabel: str = "true grade (reference)",
                     colour_label: str = "share of the true grade's eyes") -> Figure:
    """Heat map of a confusion matrix: numbers are counts, colour is the share of the row
    (the true class), so a rare grade that is always missed shows up as clearly as a common one."""
    counts = np.asarray(counts, dtype=int)
    row_sums = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(row_sums > 0, counts / np.maximum(row_sums, 1), 0.0)
    k = counts.shape[0]
    # aspect="auto": a fixed-aspect image axis fights the constrained layout and clips labels.
    fig = _figure(0.95 * k + 3.4, 0.8 * k + 1.6)
    ax = fig.subplots()
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    for i in range(k):
        for j in range(k):
            if counts[i, j] == 0:  # a bare grey 0 keeps the eye on the cells that have eyes
                ax.text(j, i, "0", ha="center", va="center", fontsize=FONT_SIZE - 1, color="#999999")
                continue
            dark = share[i, j] > 0.55
            ax.text(j, i, f"{counts[i, j]}\n{share[i, j]:.0%}", ha="center", va="center", fontsize=FONT_SIZE - 1,
                    color="white" if dark else "black", fontweight="bold" if i == j else "normal")
    ax.set_xticks(range(k), labels, rotation=25, ha="right", fontsize=FONT_SIZE - 1)
    ax.set_yticks(range(k), [f"{name} (n={n})" for name, n in zip(labels, row_sums[:, 0])],
                  fontsize=FONT_SIZE - 1)
    ax.set_xlabel(xlabel, fontsize=FONT_SIZE)
    ax.set_ylabel(ylabel, fontsize=FONT_SIZE)
    bar = fig.colorbar(image, ax=ax, shrink=0.8)
    bar.set_label(colour_label, fontsize=FONT_SIZE - 1)
    bar.ax.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    return fig


# ------------------------------------------------------------------------------ ROC
def roc_figure(curves: dict[str, dict]) -> Figure:
    """ROC curves, one panel per screening task.

    ``curves``: ``{title: {"fpr": array, "tpr": array, "auc": float, "colour": str,
    "points": {name: {"sensitivity", "specificity", "threshold"}}}}``; points are drawn at
    (1 - specificity, sensitivity) with the styles of :data:`POINT_STYLES`.
    """
    fig = _figure(5.4 * len(curves), 5.2)
    axes = fig.subplots(1, len(curves), squeeze=False)[0]
    for ax, (title, c) in zip(axes, curves.items()):
        auc = c.get("auc")
        auc_text = "n/a" if auc is None or math.isnan(auc) else f"{auc:.3f}"
        ax.plot(c["fpr"], c["tpr"], color=c.get("colour", OKABE_ITO["blue"]), linewidth=2,
                label=f"ROC curve (AUC {auc_text})", drawstyle="steps-post")
        ax.plot([0, 1], [0, 1], color="#999999", linestyle=":", linewidth=1, label="chance (AUC 0.5)")
        for name, point in c.get("points", {}).items():
            sens, spec = point.get("sensitivity"), point.get("specificity")
            if sens is None or spec is None or math.isnan(sens) or math.isnan(spec) or name not in POINT_STYLES:
                continue
            label, marker, colour = POINT_STYLES[name]
            if name == "chosen":  # a ring on top, so a ROC point at the same place still shows through
                style = {"markersize": 14, "markerfacecolor": "none", "markeredgewidth": 2.2, "zorder": 5}
            else:
                style = {"markersize": 9, "markeredgecolor": "white", "markeredgewidth": 1, "zorder": 4}
            ax.plot(1 - spec, sens, linestyle="none", marker=marker, color=colour,
                    label=f"{label}: sens {sens:.0%}, spec {spec:.0%}", **style)
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("1 - specificity (healthy eyes flagged)", fontsize=FONT_SIZE)
        ax.set_ylabel("sensitivity (diseased eyes found)", fontsize=FONT_SIZE)
        ax.set_title(title, fontsize=FONT_SIZE + 1)
        _style(ax)
        # Below the axes: inside, it would hide the operating points near the corners.
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=FONT_SIZE - 2, frameon=False)
    return fig


# ---------------------------------------------------------------------- calibration
def reliability_figure(series: dict[str, dict]) -> Figure:
    """Reliability diagram: observed share of diseased eyes against the mean predicted
    probability per bin, with the number of eyes per bin below.

    ``series``: ``{label: {"bins": [{"mean_prob", "observed", "count", "bin_lower",
    "bin_upper"}], "ece": float, "colour": str}}`` (the ``reliability`` records of a
    screening section of :func:`drgrader.evaluation.results.evaluate_table`).
    """
    fig = _figure(6.0, 5.6)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], color="#999999", linestyle=":", linewidth=1, label="perfectly calibrated")
    markers = iter(["o", "s", "^", "D"])
    n_series = max(len(series), 1)
    for k, (label, s) in enumerate(series.items()):
        bins = pd.DataFrame(s["bins"])
        used = bins[bins["count"] > 0]
        ece = s.get("ece")
        ece_text = "n/a" if ece is None or math.isnan(ece) else f"{ece:.3f}"
        top.plot(used["mean_prob"], used["observed"], marker=next(markers), color=s["colour"],
                 label=f"{label} (ECE {ece_text})")
        width = (bins["bin_upper"] - bins["bin_lower"]).to_numpy() / (n_series + 1)
        bottom.bar(bins["bin_lower"] + width * (k + 0.5), bins["count"], width=width, align="edge",
                   color=s["colour"], label=label)
    top.set_xlim(0, 1)
    top.set_ylim(-0.02, 1.02)
    top.set_ylabel("observed share diseased", fontsize=FONT_SIZE)
    top.set_title("Reliability of the screening probabilities", fontsize=FONT_SIZE + 1)
    top.legend(fontsize=FONT_SIZE - 2, loc="upper left", frameon=False)
    bottom.set_xlabel("predicted probability (bin mean)", fontsize=FONT_SIZE)
    bottom.set_ylabel("eyes", fontsize=FONT_SIZE)
    for ax in (top, bottom):
        _style(ax)
    return fig


# ------------------------------------------------------------------ referral curve
def referral_curve_figure(curve: list[dict], *, bars: tuple[float, float], band: dict | None = None) -> Figure:
    """Sensitivity and specificity (referable DR, per patient) of the automatic decisions
    against the share of patients sent to a human grader, with their 95% CI bands.

    ``curve``: the ``referral_curve`` records of a ``patient_decision`` section (``sent_share``,
    ``sensitivity``, ``specificity`` and their ``*_ci``); ``bars``: (sensitivity, specificity)
    reference lines; ``band``: the fitted band's own point (``at_cutoff``), marked."""
    fig = _figure(6.4, 4.4)
    ax = fig.subplots()
    x = np.array([100 * p["sent_share"] for p in curve], dtype=float)
    lowest = [100.0 * min(bars)]
    for key, label, colour, marker, bar in (
        ("sensitivity", "sensitivity (referable patients referred)", OKABE_ITO["vermillion"], "o", bars[0]),
        ("specificity", "specificity (healthy patients cleared)", OKABE_ITO["blue"], "s", bars[1]),
    ):
        y = np.array([np.nan if p[key] is None else 100 * p[key] for p in curve], dtype=float)
        ax.plot(x, y, marker=marker, markersize=5, color=colour, label=label)
        ci = [p.get(f"{key}_ci") or [None, None] for p in curve]
        lo = np.array([np.nan if c[0] is None else 100 * c[0] for c in ci], dtype=float)
        hi = np.array([np.nan if c[1] is None else 100 * c[1] for c in ci], dtype=float)
        if not np.isnan(lo).all():
            ax.fill_between(x, lo, hi, color=colour, alpha=0.15, linewidth=0)
        lowest += [float(np.nanmin(v)) for v in (y, lo) if not np.isnan(v).all()]
        ax.axhline(100 * bar, color=colour, linestyle=":", linewidth=1, label=f"IDx-DR bar for {key} ({100 * bar:g}%)")
    if band and band.get("sent_share") is not None:
        ax.axvline(100 * band["sent_share"], color="#777777", linestyle="--", linewidth=1,
                   label=f"fitted band: {100 * band['sent_share']:.0f}% sent to a human")
    ax.set_xlabel("patients sent to a human grader (the most uncertain), %", fontsize=FONT_SIZE)
    ax.set_ylabel("automatic decisions, %", fontsize=FONT_SIZE)
    ax.set_title("Referral curve", fontsize=FONT_SIZE + 1)
    ax.set_ylim(max(0.0, 10 * math.floor(min(lowest) / 10) - 2), 102)
    _style(ax)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=FONT_SIZE - 2, frameon=False)
    return fig


# ---------------------------------------------------------------------------- images
def side_by_side(images: list[np.ndarray], size: int = 200, gap: int = 4) -> np.ndarray:
    """RGB images resized to ``size`` x ``size`` and placed in one row on white."""
    tiles = [np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.LANCZOS)) for img in images]
    row = np.full((size, len(tiles) * size + gap * (len(tiles) - 1), 3), 255, dtype=np.uint8)
    for i, tile in enumerate(tiles):
        row[:, i * (size + gap) : i * (size + gap) + size] = tile
    return row

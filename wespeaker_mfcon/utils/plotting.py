"""DET curves as PNG (matplotlib, Agg backend, normal-deviate axes)."""

import numpy as np
from scipy.stats import norm

from wespeaker_mfcon.utils.file_utils import atomic_write
from wespeaker_mfcon.utils.metrics import compute_eer, det_curve

_TICKS = [0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6,
          0.8, 0.9, 0.95, 0.98, 0.99]


def _tick_label(p):
    pct = p * 100
    return f"{pct:g}"


def _thin(x, y, step=0.002):
    """Drop points closer than `step` (deviate units) on a grid: 1 M trials -> a few k points."""
    if len(x) <= 2000:
        return x, y
    qx, qy = np.round(x / step), np.round(y / step)
    keep = np.ones(len(x), dtype=bool)
    keep[1:] = (np.diff(qx) != 0) | (np.diff(qy) != 0)
    keep[-1] = True
    return x[keep], y[keep]


def plot_det(curves, path, title="DET curve", lo=None, hi=0.5):
    """Write a DET plot with one curve per system.

    curves: list of (label, scores, labels). Each curve's EER point is marked and its EER
    added to the legend. The PNG is written atomically.
    """
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if lo is None:
        # Resolution of the smallest error rate any curve can show.
        n_min = min(min(int(np.sum(l)), int(np.sum(1 - np.asarray(l)))) for _, _, l in curves)
        res = max(1.0 / max(n_min, 1), _TICKS[0])
        lo = min(0.01, max(t for t in _TICKS if t <= res))
    eps = 1e-12
    fig, ax = plt.subplots(figsize=(6, 6), dpi=100)
    try:
        for label, scores, labels in curves:
            fpr, fnr = det_curve(scores, labels)
            eer, _ = compute_eer(scores, labels)
            x = norm.ppf(np.clip(fpr, eps, 1 - eps))
            y = norm.ppf(np.clip(fnr, eps, 1 - eps))
            x, y = _thin(x, y)
            line, = ax.plot(x, y, lw=1.5, label=f"{label} (EER {eer * 100:.2f}%)")
            e = norm.ppf(np.clip(eer, eps, 1 - eps))
            ax.plot([e], [e], marker="o", ms=6, mfc="none", mew=1.5, color=line.get_color())
        ticks = [t for t in _TICKS if lo <= t <= hi]
        pos = norm.ppf(ticks)
        lim = (norm.ppf(lo), norm.ppf(hi))
        ax.plot(lim, lim, ls=":", lw=0.8, color="gray")
        ax.set_xticks(pos)
        ax.set_xticklabels([_tick_label(t) for t in ticks])
        ax.set_yticks(pos)
        ax.set_yticklabels([_tick_label(t) for t in ticks])
        ax.set_xlim(lim)
        ax.set_ylim(lim)
        ax.set_xlabel("False acceptance rate (%)")
        ax.set_ylabel("False rejection rate (%)")
        ax.set_title(title)
        _save(fig, ax, path, legend_loc="upper right")
    finally:
        plt.close(fig)
    return path


def plot_block_curves(series, path, title="EER per block", ylabel="EER (%)"):
    """Line plot of EER against block index, one line per series; written atomically.

    series: list of dicts {label, blocks: [k...], eer: [..], std: [..] or None,
    embedding: float or None, embedding_std: float or None}. The embedding EER is drawn
    as a dashed horizontal line in the series' colour and given in its legend entry; the
    legend sits right of the axes, so many series do not hide the curves.
    """
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.0, 4.5), dpi=100)
    try:
        _draw_block_curves(ax, series, title, ylabel)
        _save(fig, ax, path, legend_loc="outside")
    finally:
        plt.close(fig)
    return path


def plot_block_panels(panels, path, ylabel="EER (%)"):
    """plot_block_curves side by side: panels is a list of (title, series), one axes each;
    one legend per panel, under it."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.8), dpi=100,
                             squeeze=False)
    try:
        for ax, (title, series) in zip(axes[0], panels):
            _draw_block_curves(ax, series, title, ylabel)
            _grid(ax)
            if series:
                ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), fontsize=7)
            else:
                ax.text(0.5, 0.5, "no block EERs", ha="center", transform=ax.transAxes)
        _write_png(fig, path)
    finally:
        plt.close(fig)
    return path


def plot_curves(series, path, xlabel, ylabel, title=None, logx=False):
    """Line plot, one line per series; written atomically.

    series: {label: (x, y)} or {label: (x, y, yerr)} with yerr a list of error-bar half
    widths (None entries draw none)."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=100)
    try:
        for label, values in series.items():
            x, y = values[0], values[1]
            yerr = values[2] if len(values) > 2 else None
            if yerr is not None:
                yerr = [0.0 if v is None else v for v in yerr]
            ax.errorbar(x, y, yerr=yerr, marker="o", capsize=3, lw=1.5, label=label)
        if logx:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if title:
            ax.set_title(title, fontsize=10)
        _save(fig, ax, path)
    finally:
        plt.close(fig)
    return path


def _draw_block_curves(ax, series, title, ylabel):
    """The curves of plot_block_curves on one axes."""
    all_blocks = set()
    for s in series:
        blocks = list(s["blocks"])
        all_blocks.update(blocks)
        label = s["label"]
        if s.get("embedding") is not None:
            label += f" (embedding {s['embedding']:.2f}%, dashed)"
        std = s.get("std")
        if std is not None and any(v is not None for v in std):
            yerr = [0.0 if v is None else v for v in std]
            line = ax.errorbar(blocks, s["eer"], yerr=yerr, marker="o", capsize=3,
                               lw=1.5, label=label).lines[0]
        else:
            line, = ax.plot(blocks, s["eer"], marker="o", lw=1.5, label=label)
        if s.get("embedding") is not None:
            ax.axhline(s["embedding"], ls="--", lw=1.0, color=line.get_color())
            if s.get("embedding_std"):
                ax.axhspan(s["embedding"] - s["embedding_std"],
                           s["embedding"] + s["embedding_std"],
                           color=line.get_color(), alpha=0.12, lw=0)
    ax.set_xticks(sorted(all_blocks))
    ax.set_xlabel("Conformer block")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)


def _save(fig, ax, path, legend_loc="best"):
    """Grid, legend (legend_loc "outside": right of the axes), tight layout, atomic PNG write."""
    _grid(ax)
    if legend_loc == "outside":
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, borderaxespad=0)
    else:
        ax.legend(loc=legend_loc, fontsize=8)
    _write_png(fig, path)


def _grid(ax):
    ax.grid(True, ls="--", lw=0.5, alpha=0.6)


def _write_png(fig, path):
    """Tight layout, then the PNG written atomically."""
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png")

"""DET curves as PNG (matplotlib, Agg backend, normal-deviate axes), and the figure helpers
the other plots share (grid, legend, atomic PNG write)."""

import numpy as np
from scipy.stats import norm

from wespeaker_mfcon.utils.file_utils import atomic_write
from wespeaker_mfcon.scoring.metrics import compute_eer, det_curve

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
        save_figure(fig, ax, path, legend_loc="upper right")
    finally:
        plt.close(fig)
    return path


def save_figure(fig, ax, path, legend_loc="best"):
    """Grid, legend (legend_loc "outside": right of the axes), tight layout, atomic PNG write."""
    grid(ax)
    if legend_loc == "outside":
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, borderaxespad=0)
    else:
        ax.legend(loc=legend_loc, fontsize=8)
    write_png(fig, path)


def grid(ax):
    ax.grid(True, ls="--", lw=0.5, alpha=0.6)


def write_png(fig, path):
    """Tight layout, then the PNG written atomically."""
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png")

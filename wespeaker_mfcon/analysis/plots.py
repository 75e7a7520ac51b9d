"""The study figures: EER against block index (one line per variant, or one panel per setting)
and generic curves with error bars (validation curves, gain against speakers)."""

from wespeaker_mfcon.scoring.plots import grid, save_figure, write_png


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
        save_figure(fig, ax, path, legend_loc="outside")
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
            grid(ax)
            if series:
                ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), fontsize=7)
            else:
                ax.text(0.5, 0.5, "no block EERs", ha="center", transform=ax.transAxes)
        write_png(fig, path)
    finally:
        plt.close(fig)
    return path


def plot_curves(series, path, xlabel, ylabel, title=None, logx=False):
    """Line plot, one line per series; written atomically.

    series: {label: (x, y)} or {label: (x, y, yerr)}; yerr: half widths (None entries draw
    none) or a [lower, upper] pair of lists."""
    return plot_panels([(title, series)], path, xlabel, ylabel, logx)


def plot_panels(panels, path, xlabel, ylabel=None, logx=False):
    """plot_curves side by side: panels is a list of (title, series) or (title, series,
    {"logy": True}), one axes each; ylabel None: each panel's title is its y label."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(6.0 * len(panels), 4.4), dpi=100,
                             squeeze=False)
    try:
        for ax, (title, series, *opts) in zip(axes[0], panels):
            _draw_curves(ax, series, logx)
            if opts and opts[0].get("logy"):
                ax.set_yscale("log")
                _label_log_axis(ax.yaxis, [v for values in series.values()
                                           for v in _with_error_ends(*values)])
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel or title or "")
            if title and ylabel:
                ax.set_title(title, fontsize=10)
            grid(ax)
            ax.legend(loc="best", fontsize=8)
        write_png(fig, path)
    finally:
        plt.close(fig)
    return path


def _label_log_axis(axis, values):
    """A log axis ticked at the data's values, written plainly (40, not 4 x 10^1)."""
    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

    axis.set_major_locator(FixedLocator(sorted(set(values))))
    axis.set_major_formatter(ScalarFormatter())
    axis.set_minor_formatter(NullFormatter())


def _with_error_ends(x, y, yerr=None):
    """y and, where yerr is given (symmetric, or [below, above]), the ends of its bars."""
    if not yerr:
        return list(y)
    low, high = (yerr, yerr) if not isinstance(yerr[0], (list, tuple)) else yerr
    return list(y) + [v - (lo or 0) for v, lo in zip(y, low)] + \
        [v + (hi or 0) for v, hi in zip(y, high)]


def _draw_curves(ax, series, logx):
    for label, values in series.items():
        x, y = values[0], values[1]
        yerr = values[2] if len(values) > 2 else None
        if yerr is not None and yerr and not isinstance(yerr[0], (list, tuple)):
            yerr = [0.0 if v is None else v for v in yerr]
        ax.errorbar(x, y, yerr=yerr, marker="o", capsize=3, lw=1.5, label=label)
    if logx:
        ax.set_xscale("log")
        _label_log_axis(ax.xaxis, [v for values in series.values() for v in values[0]])


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

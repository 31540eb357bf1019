"""The drawing half of the paper's figures: the data of :mod:`skdice._plotting` in, PNG files out.

matplotlib (the ``plot`` extra, Agg backend) is imported inside each function,
so importing this module loads nothing heavy. Users import these functions from
:mod:`skdice.plotting`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

__all__ = [
    "plot_score_histograms",
    "plot_unit_contributions",
    "plot_p_sweep",
    "plot_contribution_covariance",
]

_ID_COLOUR = "#1f77b4"
_OOD_COLOUR = "#7f7f7f"


def _pyplot():
    from .exceptions import require

    matplotlib = require("matplotlib", "plot")
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path, plt) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Fixed metadata keeps the bytes identical from run to run.
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return path


def _ratio(numerator, denominator) -> str:
    """``numerator / denominator`` to 3 significant digits: small values stay visible (``2.45e-05``, not ``0.000``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return f"{np.float64(numerator) / np.float64(denominator):.3g}"


def _percent_limits(values, margin: float = 2.0) -> tuple[float, float]:
    """Axis limits for percentages: the data with a margin, never further than ``margin`` beyond [0, 100]."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return -margin, 100.0 + margin
    lo, hi = float(finite.min()), float(finite.max())
    pad = max(0.05 * (hi - lo), margin)
    return max(lo - pad, -margin), min(hi + pad, 100.0 + margin)


def _panel_grid(n: int) -> tuple[int, int]:
    """(rows, columns) holding ``n`` panels: one row up to 3, else 2 or 3 columns, whichever leaves fewer empty."""
    if n <= 3:
        return 1, n
    cols = min((2, 3), key=lambda c: (-n % c, c))
    return -(-n // cols), cols


def plot_score_histograms(panels: Mapping[str, dict], path, *, title: str | None = None) -> Path:
    """Draw score histograms: one row per OOD set, one column per method.

    Parameters
    ----------
    panels : mapping of str to dict
        Method label (for example ``"energy"``, ``"DICE p=0.9"``) to the output
        of :func:`histogram_data` for that method's scores. All must name the
        same OOD sets.
    path : str or Path
        PNG file to write.
    title : str, default=None
        Figure title.

    Returns
    -------
    Path
        ``path``.
    """
    if not panels:
        raise ValueError("panels is empty: give at least one method.")
    plt = _pyplot()
    methods = list(panels)
    ood_names = list(next(iter(panels.values()))["ood"])
    fig, axes = plt.subplots(
        len(ood_names), len(methods), figsize=(4.2 * len(methods), 2.6 * len(ood_names)),
        squeeze=False,
    )
    for j, method in enumerate(methods):
        data = panels[method]
        edges = data["edges"]
        for i, ood in enumerate(ood_names):
            ax = axes[i, j]
            ax.stairs(data["id"], edges, fill=True, alpha=0.55, color=_ID_COLOUR, label="ID")
            ax.stairs(data["ood"][ood], edges, fill=True, alpha=0.55, color=_OOD_COLOUR, label=ood)
            ax.set_title(
                f"{method} | {ood}: OOD std / ID mean = {_ratio(data['ood_std'][ood], data['id_mean'])}",
                fontsize=8,
            )
            ax.legend(fontsize=7, loc="upper left")
            ax.tick_params(labelsize=7)
            if i == len(ood_names) - 1:
                ax.set_xlabel("score (higher = more in-distribution)", fontsize=8)
            if j == 0:
                ax.set_ylabel("density", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path, plt)


def plot_unit_contributions(data: Mapping[str, dict], path, *, title: str | None = None) -> Path:
    """Draw unit contributions: the ID panel, then one panel per OOD set.

    Each panel shows the mean contribution of every unit (line) and a band of
    one standard deviation around it, units in the order of ``data``.

    Parameters
    ----------
    data : mapping of str to dict
        OOD name to the output of :func:`unit_contributions`, all for the same
        class, ID data and unit order (the ID panel is drawn from the first).
    path : str or Path
        PNG file to write.
    title : str, default=None

    Returns
    -------
    Path
    """
    if not data:
        raise ValueError("data is empty: give at least one OOD set.")
    plt = _pyplot()
    first = next(iter(data.values()))
    panels = [("id", first, _ID_COLOUR, f"ID (n={first['n_id']})")]
    panels += [("ood", d, _OOD_COLOUR, f"{name} (n={d['n_ood']})") for name, d in data.items()]
    n_rows, n_cols = _panel_grid(len(panels))
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.5 * n_cols, 2.6 * n_rows), squeeze=False, sharey=True)
    for ax, (who, d, colour, label) in zip(axes.ravel(), panels):
        x = np.arange(d[f"{who}_mean"].size)
        mean, std = d[f"{who}_mean"], np.sqrt(d[f"{who}_var"])
        ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.3, linewidth=0)
        ax.plot(x, mean, color=colour, linewidth=1.0)
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_title(f"{label}: contribution to class {d['class_index']}", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("unit (sorted by mean ID contribution)", fontsize=8)
        ax.set_ylabel("weight × activation", fontsize=8)
    for ax in axes.ravel()[len(panels):]:
        fig.delaxes(ax)  # no empty panel: only as many as there are data sets
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path, plt)


def plot_p_sweep(data: dict, path, *, title: str | None = None) -> Path:
    """Draw FPR95 and the normalised OOD score std against ``p``.

    Parameters
    ----------
    data : dict
        Output of :func:`p_sweep`.
    path : str or Path
        PNG file to write.
    title : str, default=None

    Returns
    -------
    Path
    """
    plt = _pyplot()
    ps = np.asarray(data["p"])
    x = np.arange(ps.size)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, key, label in ((axes[0], "fpr", "FPR95 (%)"), (axes[1], "ood_std", "OOD score std / ID score mean")):
        scale = 100.0 if key == "fpr" else 1.0
        for name, values in data[key].items():
            avg = name == "average"
            ax.plot(x, scale * np.asarray(values), marker="o", markersize=3,
                    linewidth=2.0 if avg else 1.0, color="black" if avg else None,
                    linestyle="-" if avg else "--", label=name)
        if key == "fpr":  # a percentage: never an axis from 96 to 104%
            ax.set_ylim(*_percent_limits(np.concatenate([scale * np.ravel(v) for v in data[key].values()])))
        ax.set_xticks(x, [f"{p:g}" for p in ps], fontsize=7)
        ax.set_xlabel("sparsity p (0 = dense energy)", fontsize=8)
        ax.set_ylabel(label, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path, plt)


def plot_contribution_covariance(
    data: Mapping[str, dict], path, *, title: str | None = None, vmax: float | None = None
) -> Path:
    """Draw covariance matrices of unit contributions, one panel per data set (Figure 6).

    Blue is negative, red positive, white zero, on one symmetric colour scale
    for all panels. Dashed lines mark DICE's boundary: dropped units above and
    left of it, kept units below and right.

    Parameters
    ----------
    data : mapping of str to dict
        Data set name (for example the OOD split) to the output of
        :func:`contribution_covariance`.
    path : str or Path
        PNG file to write.
    title : str, default=None
        Figure title.
    vmax : float, default=None
        End of the colour scale (``-vmax`` to ``vmax``). Default: the 99.9th
        percentile of the absolute off-diagonal entries over all panels, so
        that the few large variances on the diagonal do not wash out the
        covariances (they saturate instead).

    Returns
    -------
    Path
        ``path``.
    """
    if not data:
        raise ValueError("data is empty: give at least one data set.")
    if vmax is not None and not (np.isfinite(vmax) and vmax > 0):
        raise ValueError(f"vmax must be a positive number, got {vmax!r}.")
    if vmax is None:
        off = [np.abs(d["cov"][~np.eye(d["cov"].shape[0], dtype=bool)]) for d in data.values()]
        off = np.concatenate(off) if off else np.zeros(0)
        vmax = float(np.percentile(off, 99.9)) if off.size else 0.0
        if not vmax > 0:
            vmax = max(float(max(np.abs(d["cov"]).max() for d in data.values())), 1.0)
    plt = _pyplot()
    names = list(data)
    fig, axes = plt.subplots(
        1, len(names), figsize=(4.4 * len(names) + 1.2, 5.0), squeeze=False, layout="constrained"
    )
    image = None
    for ax, name in zip(axes[0], names):
        d = data[name]
        image = ax.imshow(d["cov"], cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
        if d.get("n_dropped") is not None:
            edge = d["n_dropped"] - 0.5
            ax.axhline(edge, color="black", linewidth=0.8, linestyle="--")
            ax.axvline(edge, color="black", linewidth=0.8, linestyle="--")
        caption = f"{name} (n={d['n']}): Cov of contributions to class {d['class_index']}"
        if d.get("var_dense") is not None:
            caption += f"\nVar f = {d['var_dense']:.3g}, Var f^DICE = {d['var_masked']:.3g}"
        ax.set_title(caption, fontsize=8)
        ax.set_xlabel("unit (sorted by mean ID contribution)", fontsize=8)
        ax.set_ylabel("unit", fontsize=8)
        ax.tick_params(labelsize=7)
    cbar = fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8)
    cbar.ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path, plt)

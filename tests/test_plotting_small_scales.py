"""The figures at small scales, as on an untrained model (issue 22, item 8).

Checked on the figures' data and labels, not their pixels: the histogram
titles show small ratios, the FPR95 axis stays within [0, 100] with a margin,
and the contribution figure has one panel per data set and no empty one.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from skdice import _drawing  # noqa: E402
from skdice._plotting import p_sweep_from_scores  # noqa: E402
from skdice.plotting import (  # noqa: E402
    histogram_data,
    plot_p_sweep,
    plot_score_histograms,
    plot_unit_contributions,
    unit_contributions,
)


@pytest.fixture
def figures(monkeypatch):
    """The figures drawn, kept open for inspection instead of only saved."""
    drawn = []
    save = _drawing._save

    def keep(fig, path, plt):
        drawn.append(fig)
        fig.canvas.draw()  # the layout as saved
        return save(fig, path, plt)

    monkeypatch.setattr(_drawing, "_save", keep)
    return drawn


def test_histogram_titles_show_small_ratios(tmp_path, figures):
    rng = np.random.default_rng(0)
    id_scores = 1000.0 + rng.normal(scale=1e-3, size=200)  # an untrained model: tiny spread, large mean
    data = histogram_data(id_scores, {"noise": 1000.0 + rng.normal(scale=2e-2, size=200)})
    plot_score_histograms({"energy": data}, tmp_path / "h.png")
    (ax,) = figures[0].axes
    ratio = data["ood_std"]["noise"] / data["id_mean"]
    assert 1e-5 < ratio < 1e-4
    assert ax.get_title() == f"energy | noise: OOD std / ID mean = {ratio:.3g}"
    assert "0.000" not in ax.get_title()


def test_histogram_title_with_larger_ratios_keeps_three_digits(tmp_path, figures):
    data = histogram_data(np.array([1.0, 3.0]), {"ood": np.array([0.0, 1.0])})  # ood std 0.5, ID mean 2
    plot_score_histograms({"dice": data}, tmp_path / "h.png")
    assert figures[0].axes[0].get_title() == "dice | ood: OOD std / ID mean = 0.25"


@pytest.mark.parametrize("fpr_level", [1.0, 0.0, 0.5])
def test_the_fpr95_axis_stays_within_0_and_100_percent(tmp_path, figures, fpr_level):
    rng = np.random.default_rng(1)
    ps = [0.0, 0.5, 0.9]
    if fpr_level == 1.0:  # OOD scores all above ID: FPR95 100% at every p
        id_s, ood_s = [rng.normal(size=100)] * 3, [rng.normal(size=100) + 100] * 3
    elif fpr_level == 0.0:
        id_s, ood_s = [rng.normal(size=100) + 100] * 3, [rng.normal(size=100)] * 3
    else:
        id_s, ood_s = [rng.normal(size=100)] * 3, [rng.normal(size=100)] * 3
    data = p_sweep_from_scores(ps, id_s, {"noise": ood_s})
    plot_p_sweep(data, tmp_path / "p.png")
    ax = figures[0].axes[0]
    assert ax.get_ylabel() == "FPR95 (%)"
    lo, hi = ax.get_ylim()
    assert -2.0 <= lo and hi <= 102.0, (lo, hi)
    values = 100 * np.concatenate([np.ravel(v) for v in data["fpr"].values()])
    assert lo <= values.min() and values.max() <= hi  # every point still shown
    if fpr_level == 1.0:
        assert hi == 102.0 and lo < 100.0


@pytest.mark.parametrize("n_ood", [1, 2, 3, 4])
def test_contributions_draw_one_panel_per_data_set_and_no_empty_one(tmp_path, figures, n_ood):
    rng = np.random.default_rng(2)
    W = rng.normal(size=(6, 3))
    X = np.abs(rng.normal(size=(40, 6)))
    mean = X.mean(axis=0)
    data = {f"ood{k}": unit_contributions(X, np.abs(rng.normal(size=(30, 6))), W, 0, train_mean=mean)
            for k in range(n_ood)}
    plot_unit_contributions(data, tmp_path / "c.png")
    fig = figures[0]
    titles = [ax.get_title() for ax in fig.axes]
    assert len(fig.axes) == n_ood + 1, titles
    assert titles[0].startswith("ID (n=40)") and all(t.startswith(f"ood{k} (n=30)") for k, t in enumerate(titles[1:]))
    assert all(ax.get_visible() and ax.has_data() for ax in fig.axes)
    if n_ood <= 2:
        assert {ax.get_subplotspec().get_geometry()[:2] for ax in fig.axes} == {(1, n_ood + 1)}

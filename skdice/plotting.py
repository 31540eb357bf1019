"""The paper's figures from features: data first, then pictures.

Four figures, each in two steps. A *data* function computes plain arrays
(tested against independent NumPy references); a *plot* function draws them
with matplotlib (Agg backend, imported inside the function, the ``plot``
extra) and writes a PNG.

* :func:`histogram_data` / :func:`plot_score_histograms`: score distributions,
  ID against each OOD set, dense energy and DICE side by side (Figure 4).
* :func:`unit_contributions` / :func:`plot_unit_contributions`: the
  contribution ``h_i(x) w_ic`` of every penultimate unit to one class, units
  sorted by their mean contribution on ID data, mean and a one-standard-
  deviation band, ID against OOD (Figures 1 and 5).
* :func:`p_sweep` / :func:`plot_p_sweep`: FPR95 and the normalised standard
  deviation of the OOD scores against the sparsity ``p`` (Table 4).
* :func:`contribution_covariance` / :func:`plot_contribution_covariance`: the
  covariance matrix of the unit contributions to one class, units sorted by
  their mean ID contribution (Figure 6, Appendix E).

:func:`plot_store` runs all four on a feature store; ``skdice plot`` calls it.

This module is the public face; the array functions live in the core
(``skdice._plotting``), :func:`plot_store` in :mod:`skdice.workflows.plot`.
"""

from ._plotting import (
    PAPER_PS,
    contribution_covariance,
    histogram_data,
    p_sweep,
    plot_contribution_covariance,
    plot_p_sweep,
    plot_score_histograms,
    plot_unit_contributions,
    unit_contributions,
)
from .workflows.plot import plot_store

__all__ = [
    "PAPER_PS",
    "histogram_data",
    "unit_contributions",
    "p_sweep",
    "contribution_covariance",
    "plot_score_histograms",
    "plot_unit_contributions",
    "plot_p_sweep",
    "plot_contribution_covariance",
    "plot_store",
]

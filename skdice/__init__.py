"""skdice: DICE out-of-distribution detection with a scikit-learn API.

The core depends on NumPy, SciPy and scikit-learn only; the torch extraction
stage lives in :mod:`skdice.extract` and the command line in :mod:`skdice.cli`.

``import skdice`` is light: the names below load on first use (PEP 562), and
the first use of any of them loads them all, with the whole detector
catalogue (:mod:`skdice.detectors`). The registry (:func:`available_detectors`,
:func:`get_detector`) loads the catalogue itself at its first lookup, so it is
always full. The command line therefore starts (``--help``, ``--version``,
completion) without importing scikit-learn.
"""

from . import _registry
from ._version import __version__

#: every public name, by the module that defines it
_EXPORTS = {
    "BaseDetector": "._base", "DetectorTags": "._base", "SkdiceTags": "._base",
    "detector_tags": "._base",
    "DICEDetector": "._dice",
    "Head": "._head",
    "UnitDropoutDetector": ".detectors.ablations", "UnitPruningDetector": ".detectors.ablations",
    "WeightDropoutDetector": ".detectors.ablations", "WeightPruningDetector": ".detectors.ablations",
    "ASHBDetector": ".detectors.ash", "ASHPDetector": ".detectors.ash",
    "ASHSDetector": ".detectors.ash", "SCALEDetector": ".detectors.ash",
    "EnergyDetector": ".detectors.baselines", "MaxLogitDetector": ".detectors.baselines",
    "MSPDetector": ".detectors.baselines", "ODINDetector": ".detectors.baselines",
    "DICEMSPDetector": ".detectors.dice_msp",
    "DICEBottomKDetector": ".detectors.dice_variants", "DICERandomKDetector": ".detectors.dice_variants",
    "DICETopBottomKDetector": ".detectors.dice_variants",
    "FDBDDetector": ".detectors.fdbd",
    "GENDetector": ".detectors.gen",
    "GradNormDetector": ".detectors.gradnorm",
    "KNNDetector": ".detectors.knn",
    "LINeDetector": ".detectors.line",
    "MahalanobisDetector": ".detectors.mahalanobis",
    "DICEReActDetector": ".detectors.react", "ReActDetector": ".detectors.react",
    "ResidualDetector": ".detectors.residual",
    "BATSDetector": ".detectors.shaping", "VRADetector": ".detectors.shaping",
    "OptFSDetector": ".detectors.shaping",
    "ViMDetector": ".detectors.vim",
    "RMDSDetector": ".detectors.rmds",
    "KLMatchingDetector": ".detectors.klm",
    "NCIDetector": ".detectors.nci",
    "NECODetector": ".detectors.neco",
    "NNGuideDetector": ".detectors.nnguide",
    "SHEDetector": ".detectors.she",
    "RelationDetector": ".detectors.relation",
    "available_detectors": "._registry", "get_detector": "._registry",
    "load_detector": ".persistence", "save_detector": ".persistence",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def _load_catalogue():
    from . import detectors  # noqa: F401  (importing registers the catalogue)


_registry.set_catalogue_loader(_load_catalogue)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    # the first public name asked for loads them all: skdice is then as if imported eagerly
    for export, module in _EXPORTS.items():
        globals()[export] = getattr(importlib.import_module(module, __name__), export)
    _registry.available_detectors()
    return globals()[name]


def __dir__():
    return sorted(set(globals()) | set(__all__))

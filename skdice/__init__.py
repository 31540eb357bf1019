"""skdice: DICE out-of-distribution detection with a scikit-learn API.

The core depends on NumPy, SciPy and scikit-learn only; the torch extraction
stage lives in :mod:`skdice.extract` and the command line in :mod:`skdice.cli`.
Importing skdice imports the whole detector catalogue (:mod:`skdice.detectors`),
so the registry (:func:`available_detectors`) is full from then on.
"""

from ._base import BaseDetector, DetectorTags, SkdiceTags, detector_tags
from ._dice import DICEDetector
from ._head import Head
from .detectors.ablations import (
    UnitDropoutDetector,
    UnitPruningDetector,
    WeightDropoutDetector,
    WeightPruningDetector,
)
from .detectors.ash import ASHBDetector, ASHPDetector, ASHSDetector, SCALEDetector
from .detectors.baselines import EnergyDetector, MaxLogitDetector, MSPDetector, ODINDetector
from .detectors.dice_msp import DICEMSPDetector
from .detectors.dice_variants import (
    DICEBottomKDetector,
    DICERandomKDetector,
    DICETopBottomKDetector,
)
from .detectors.gen import GENDetector
from .detectors.knn import KNNDetector
from .detectors.mahalanobis import MahalanobisDetector
from .detectors.react import DICEReActDetector, ReActDetector
from .detectors.vim import ViMDetector
from ._registry import available_detectors, get_detector
from ._version import __version__
from .persistence import load_detector, save_detector

__all__ = [
    "ASHBDetector",
    "ASHPDetector",
    "ASHSDetector",
    "BaseDetector",
    "DICEBottomKDetector",
    "DICEDetector",
    "DICEMSPDetector",
    "DICERandomKDetector",
    "DICEReActDetector",
    "DICETopBottomKDetector",
    "DetectorTags",
    "EnergyDetector",
    "GENDetector",
    "Head",
    "KNNDetector",
    "MSPDetector",
    "MahalanobisDetector",
    "MaxLogitDetector",
    "ODINDetector",
    "ReActDetector",
    "SCALEDetector",
    "SkdiceTags",
    "UnitDropoutDetector",
    "UnitPruningDetector",
    "ViMDetector",
    "WeightDropoutDetector",
    "WeightPruningDetector",
    "available_detectors",
    "detector_tags",
    "get_detector",
    "load_detector",
    "save_detector",
    "__version__",
]

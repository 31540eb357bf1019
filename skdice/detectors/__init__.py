"""The detector catalogue: every module here registers its detectors on import.

Every detector is importable from here (``from skdice.detectors import
KNNDetector``) and from :mod:`skdice`.
"""

from .ablations import (
    UnitDropoutDetector,
    UnitPruningDetector,
    WeightDropoutDetector,
    WeightPruningDetector,
)
from .ash import ASHBDetector, ASHPDetector, ASHSDetector, SCALEDetector
from .baselines import EnergyDetector, MaxLogitDetector, MSPDetector, ODINDetector
from .dice_msp import DICEMSPDetector
from .dice_variants import DICEBottomKDetector, DICERandomKDetector, DICETopBottomKDetector
from .gen import GENDetector
from .knn import KNNDetector
from .mahalanobis import MahalanobisDetector
from .react import DICEReActDetector, ReActDetector
from .vim import ViMDetector
from .._dice import DICEDetector

# register any module not listed above too, so that the catalogue cannot miss one
# (tests/test_package.py then fails until its classes are exported here)
import importlib as _importlib  # noqa: E402
import pkgutil as _pkgutil  # noqa: E402

for _module in _pkgutil.iter_modules(__path__):
    _importlib.import_module(f"{__name__}.{_module.name}")
del _importlib, _pkgutil, _module

__all__ = [
    "ASHBDetector",
    "ASHPDetector",
    "ASHSDetector",
    "DICEBottomKDetector",
    "DICEDetector",
    "DICEMSPDetector",
    "DICERandomKDetector",
    "DICEReActDetector",
    "DICETopBottomKDetector",
    "EnergyDetector",
    "GENDetector",
    "KNNDetector",
    "MSPDetector",
    "MahalanobisDetector",
    "MaxLogitDetector",
    "ODINDetector",
    "ReActDetector",
    "SCALEDetector",
    "UnitDropoutDetector",
    "UnitPruningDetector",
    "ViMDetector",
    "WeightDropoutDetector",
    "WeightPruningDetector",
]

"""The detector catalogue: every module here registers its detectors on import.

Each module is imported explicitly below (tests/test_package.py fails when a
module here registers a detector this package does not export).

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
from .fdbd import FDBDDetector
from .gen import GENDetector
from .gradnorm import GradNormDetector
from .klm import KLMatchingDetector
from .knn import KNNDetector
from .line import LINeDetector
from .mahalanobis import MahalanobisDetector
from .nci import NCIDetector
from .neco import NECODetector
from .nnguide import NNGuideDetector
from .react import DICEReActDetector, ReActDetector
from .relation import RelationDetector
from .residual import ResidualDetector
from .rmds import RMDSDetector
from .shaping import BATSDetector, OptFSDetector, VRADetector
from .she import SHEDetector
from .vim import ViMDetector
from .._dice import DICEDetector

__all__ = [
    "ASHBDetector",
    "ASHPDetector",
    "ASHSDetector",
    "BATSDetector",
    "DICEBottomKDetector",
    "DICEDetector",
    "DICEMSPDetector",
    "DICERandomKDetector",
    "DICEReActDetector",
    "DICETopBottomKDetector",
    "EnergyDetector",
    "FDBDDetector",
    "GENDetector",
    "GradNormDetector",
    "KLMatchingDetector",
    "KNNDetector",
    "LINeDetector",
    "MSPDetector",
    "MahalanobisDetector",
    "MaxLogitDetector",
    "NCIDetector",
    "NECODetector",
    "NNGuideDetector",
    "ODINDetector",
    "OptFSDetector",
    "RMDSDetector",
    "ReActDetector",
    "RelationDetector",
    "ResidualDetector",
    "SCALEDetector",
    "SHEDetector",
    "UnitDropoutDetector",
    "UnitPruningDetector",
    "VRADetector",
    "ViMDetector",
    "WeightDropoutDetector",
    "WeightPruningDetector",
]

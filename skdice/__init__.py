"""skdice: DICE out-of-distribution detection with a scikit-learn API.

The core depends on NumPy, SciPy and scikit-learn only; the torch extraction
stage lives in :mod:`skdice.extract` and the command line in :mod:`skdice.cli`.
"""

from ._base import BaseDetector, available_detectors, get_detector
from ._dice import DICEDetector
from ._head import Head
from .persistence import load_detector, save_detector

__version__ = "0.1.0"

__all__ = [
    "BaseDetector",
    "DICEDetector",
    "Head",
    "available_detectors",
    "get_detector",
    "load_detector",
    "save_detector",
    "__version__",
]

"""The detector catalogue: every module here registers its detectors on import."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

del importlib, pkgutil

"""Nipype interfaces: thin adapters over the encoder, regional and prediction layers.

Names are imported on first use (``from anatcl_nipype.interfaces import AnatCLEncode``), so
importing one interface does not import the others' dependencies.
"""

import importlib

_EXPORTS = {
    "encoder": ("AnatCLEncode", "AnatCLEncodeBatch"),
    "regional": ("CAT12ROIMeasures", "FreeSurferAparcMeasures", "AtlasGMVolumes",
                 "RegionPooledFeatures", "MergeRegionalTables"),
    "prediction": ("JoinEmbeddings", "FitProbe", "ApplyProbe"),
    "training": ("AnatCLPretrain", "AnatCLFineTune"),
    "bids": ("AnatCLDerivativesDataSink", "DatasetDescription"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)

"""Nipype interfaces: thin adapters over the encoder, regional and prediction layers.

Names are imported on first use (``from anatcl_nipype.interfaces import AnatCLEncode``), so
importing one interface does not import the others' dependencies.
"""

from anatcl_nipype.lazy_exports import lazy_exports

_EXPORTS = {
    "encoder": ("AnatCLEncode", "AnatCLEncodeBatch"),
    "regional": ("CAT12ROIMeasures", "FreeSurferAparcMeasures", "AtlasGMVolumes",
                 "RegionPooledFeatures", "MergeRegionalTables"),
    "prediction": ("JoinEmbeddings", "FitProbe", "ApplyProbe"),
    "training": ("AnatCLPretrain", "AnatCLFineTune"),
    "bids": ("AnatCLDerivativesDataSink", "DatasetDescription", "GroupDerivativesSink"),
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)

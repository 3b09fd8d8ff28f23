"""Maps of what a probe looks at: voxel relevance of a GM map for a probe's score.

A saved linear probe on AnatCL embeddings is composed on top of the frozen encoder
(:class:`ProbeScore`), and captum attributes its decision score (class logit or
regression output) to the input voxels: integrated gradients from the group's mean
map (default) or occlusion. :func:`probe_relevance_maps` writes per-participant and
group maps on the CAT12 grid (BIDS ``desc-relevance``), with sidecars, and a
per-region table. Imports torch, captum, scikit-learn; no Nipype.

>>> from anatcl_nipype.relevance import forward_backward_passes
>>> forward_backward_passes("integrated_gradients", steps=20)
(21, 20)
"""

from anatcl_nipype.lazy_exports import lazy_exports

_EXPORTS = {
    "probe_score": ("ProbeScore", "load_probe_score", "probe_affine_map", "select_score"),
    "attribution": ("METHODS", "GroupRelevance", "Relevance", "attribute_volume",
                    "decision_score", "forward_backward_passes"),
    "maps": ("BASELINES", "RelevanceOutputs", "probe_relevance_maps", "region_relevance",
             "write_region_table", "write_relevance_map"),
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)

"""Reusable Nipype workflows (``init_*_wf``); building them never imports torch.

The group level is :func:`init_anatcl_group_wf` (the command line calls it too), a
dispatcher to one factory per kind of study (fit, apply, fold ensemble, relevance maps);
``init_anatcl_prediction_wf`` is its deprecated predecessor.

Names are imported on first use (``from anatcl_nipype.workflows import init_anatcl_encoding_wf``).
"""

from anatcl_nipype.lazy_exports import lazy_exports

_EXPORTS = {
    "encoding": ("init_anatcl_encoding_wf", "init_anatcl_group_encoding_wf"),
    "regional": ("init_anatcl_regional_wf", "init_anatcl_group_regional_wf"),
    "prediction": ("init_anatcl_prediction_wf",),
    "derivatives": ("init_anatcl_derivatives_wf",),
    "cat12": ("init_cat12_anatcl_wf",),
    "spm": ("init_spm_anatcl_wf",),
    "base": ("init_anatcl_participant_wf", "init_single_subject_wf", "single_subject_wf_name"),
    "group": ("init_anatcl_group_wf", "init_anatcl_probe_fit_wf", "init_anatcl_probe_apply_wf",
              "init_anatcl_fold_ensemble_wf", "init_anatcl_probe_relevance_wf",
              "target_folder"),
    "group_derivatives": ("init_anatcl_group_derivatives_wf",),
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)

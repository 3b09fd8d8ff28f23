"""Reusable Nipype workflows (``init_*_wf``); building them never imports torch.

Names are imported on first use (``from anatcl_nipype.workflows import init_anatcl_encoding_wf``).
"""

import importlib

_EXPORTS = {
    "encoding": ("init_anatcl_encoding_wf", "init_anatcl_group_encoding_wf"),
    "regional": ("init_anatcl_regional_wf", "init_anatcl_group_regional_wf"),
    "prediction": ("init_anatcl_prediction_wf",),
    "derivatives": ("init_anatcl_derivatives_wf",),
    "cat12": ("init_cat12_anatcl_wf",),
    "spm": ("init_spm_anatcl_wf",),
    "base": ("init_anatcl_participant_wf", "init_single_subject_wf"),
    "group": ("init_anatcl_group_wf",),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)

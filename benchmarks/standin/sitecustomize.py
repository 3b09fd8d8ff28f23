"""The fast stand-in encoder of ``benchmarks/scale_cohort.py``, in every process it starts.

Put on ``PYTHONPATH``, Python imports this file at start-up in the command's process and in
every worker process (whatever the start method). When ``anatcl_nipype.encoder.model`` is
imported, ``AnatCLNetwork.forward`` is replaced by an 8x8x8 average pooling of the volume
(512 values, finite): what the ResNet-18 would compute in ~0.5-1 s per map on a CPU takes
milliseconds. Everything else is the real code: the checkpoint loaded (once per process),
the map read, checked and cropped, its sha256, the ``.npy`` and sidecar, the sinks.
Nothing is imported here until the model module is.
"""

import importlib.abc
import sys

TARGET = "anatcl_nipype.encoder.model"


def _pooled(self, x, use_head=False):
    import torch.nn.functional as F

    return F.adaptive_avg_pool3d(x.float(), (8, 8, 8)).flatten(1)


class _PatchAfterImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != TARGET:
            return None
        sys.meta_path.remove(self)
        from importlib.util import find_spec

        spec = find_spec(name)
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            module.AnatCLNetwork.forward = _pooled

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _PatchAfterImport())

"""Nipype interface for maps of what a probe looks at (voxel relevance).

A thin adapter over :func:`anatcl_nipype.relevance.probe_relevance_maps`: it checks the
options, calls it and reports the files it wrote (atomically) in the node's folder.
torch and captum are imported only when the node runs.

>>> ProbeRelevanceMaps(steps=8).inputs.baseline
'group_mean'
"""

from pathlib import Path

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    InputMultiObject,
    OutputMultiObject,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from anatcl_nipype.errors import AnatCLError
from anatcl_nipype.options import DESCRIPTORS, FOLDS


class ProbeRelevanceMapsInputSpec(BaseInterfaceInputSpec):
    # No exists=True on the maps: a missing map fails in the node with a VolumeError naming it.
    in_files = InputMultiObject(File(), mandatory=True,
                                desc="CAT12 grey-matter maps (mri/mwp1*.nii)")
    participant_ids = traits.List(traits.Str(),
                                  desc="one id per map; default: sub-<label> from each path")
    model = File(exists=True, mandatory=True,
                 desc="probe saved by FitProbe on the AnatCL embedding (.skops + .json card)")
    weights = File(exists=True, desc="AnatCL checkpoint the probe's embeddings were made with; "
                                     "without it the released weights of descriptor/fold")
    descriptor = traits.Enum(*DESCRIPTORS, usedefault=True, desc="released weights: descriptor")
    fold = traits.Range(low=FOLDS[0], high=FOLDS[-1], value=FOLDS[0], usedefault=True,
                        desc="released weights: fold")
    device = traits.Str("auto", usedefault=True, desc="auto, cpu, cuda or cuda:N")
    method = traits.Enum("integrated_gradients", "occlusion", usedefault=True,
                         desc="captum attribution method")
    baseline = traits.Either(traits.Enum("group_mean", "zeros"), File(exists=True),
                             default="group_mean", usedefault=True,
                             desc="what relevance is measured against: the mean of in_files, "
                                  "the all-zero map, or a GM map on the CAT12 grid")
    steps = traits.Range(low=1, value=20, usedefault=True,
                         desc="integrated-gradients steps: forward+backward passes per map")
    window = traits.Range(low=1, value=12, usedefault=True, desc="occlusion cube side (voxels)")
    internal_batch_size = traits.Range(low=1, value=1, usedefault=True,
                                       desc="volumes per network pass (1: about 1 GB on CPU)")
    target_class = traits.Str(desc="class whose logit to explain (default: the second class "
                                   "of a binary probe; needed for more classes)")
    atlas = File(exists=True, desc="integer label image on the CAT12 grid for the region table")
    label_table = File(exists=True, desc="region names of the atlas (dseg.tsv, LUT, CAT12 csv)")
    num_threads = traits.Int(1, usedefault=True, desc="torch CPU threads (set from n_procs)")


class ProbeRelevanceMapsOutputSpec(TraitedSpec):
    out_files = OutputMultiObject(File(exists=True),
                                  desc="per-participant relevance maps (desc-relevance, "
                                       "CAT12 grid)")
    out_jsons = OutputMultiObject(File(exists=True), desc="their JSON sidecars")
    participant_ids = traits.List(traits.Str(), desc="ids of the maps, in order")
    group_map = File(exists=True, desc="group relevance map (oriented mean)")
    group_json = File(exists=True, desc="its JSON sidecar")
    region_tsv = File(exists=True, desc="region, index, mean_relevance, rank (with atlas)")
    region_json = File(exists=True, desc="its JSON sidecar")


class ProbeRelevanceMaps(SimpleInterface):
    """Voxel relevance of CAT12 grey-matter maps for a saved linear probe's score.

    Wraps :func:`anatcl_nipype.relevance.probe_relevance_maps`: the probe (scaler and
    linear model) is composed on the frozen AnatCL encoder and captum attributes the
    probe's decision score to the input voxels. Integrated gradients cost ``steps``
    forward and backward passes per map (off by default in the group workflow).
    Writes ``<participant_id>_desc-relevance_statmap.nii.gz`` (+ ``.json``) per map,
    ``group_desc-relevance_statmap.nii.gz`` and, with an atlas,
    ``group_desc-relevance_regions.tsv``.

    >>> from nipype import Node
    >>> node = Node(ProbeRelevanceMaps(method="occlusion", window=16), name="relevance")
    >>> sorted(node.outputs.copyable_trait_names())[:3]
    ['group_json', 'group_map', 'out_files']
    """

    input_spec = ProbeRelevanceMapsInputSpec
    output_spec = ProbeRelevanceMapsOutputSpec

    def _run_interface(self, runtime):
        from anatcl_nipype.relevance import probe_relevance_maps
        from anatcl_nipype.threads import set_torch_threads

        if isdefined(self.inputs.label_table) and not isdefined(self.inputs.atlas):
            raise AnatCLError("label_table given without an atlas; pass the atlas image too")
        set_torch_threads(max(1, self.inputs.num_threads))
        outputs = probe_relevance_maps(
            list(self.inputs.in_files), self.inputs.model, Path(runtime.cwd),
            weights=_optional(self.inputs.weights), descriptor=self.inputs.descriptor,
            fold=self.inputs.fold, device=self.inputs.device,
            participant_ids=_optional(self.inputs.participant_ids), method=self.inputs.method,
            baseline=self.inputs.baseline, steps=self.inputs.steps,
            internal_batch_size=self.inputs.internal_batch_size, window=self.inputs.window,
            target_class=_optional(self.inputs.target_class), atlas=_optional(self.inputs.atlas),
            label_table=_optional(self.inputs.label_table))
        self._results.update(
            out_files=[str(path) for path in outputs.maps],
            out_jsons=[str(path) for path in outputs.sidecars],
            participant_ids=list(outputs.participant_ids),
            group_map=str(outputs.group_map), group_json=str(outputs.group_sidecar))
        if outputs.region_table is not None:
            self._results.update(region_tsv=str(outputs.region_table),
                                 region_json=str(outputs.region_sidecar))
        return runtime


def _optional(value):
    return value if isdefined(value) else None

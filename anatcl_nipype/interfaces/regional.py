"""Nipype interfaces for region-wise measures: CAT12 ROI files, FreeSurfer stats, atlases.

Thin adapters over :mod:`anatcl_nipype.regional`. Each per-subject interface writes a
one-row BIDS-style TSV (``participant_id``, then ``<atlas>_<region>_<measure>``
columns) and its JSON sidecar (each column's atlas, region id and name, measure and
units; the input files and their sha256). :class:`MergeRegionalTables` joins such
tables into one, by participant: use it as a JoinNode for a group table.

>>> CAT12ROIMeasures(atlases=["neuromorphometrics"]).inputs.atlases
['neuromorphometrics']
"""

from pathlib import Path

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    InputMultiObject,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

import anatcl_nipype
from anatcl_nipype.bids import participant_id_from_path, scan_id, session_id_from_path
from anatcl_nipype.errors import AnatCLError, RegionalError
from anatcl_nipype.files import sha256_file
from anatcl_nipype.interfaces.encoder import EncoderOptionsInputSpec, make_encoder
from anatcl_nipype.regional import (
    atlas_gm_volumes,
    measures_to_row,
    read_aparc_pair,
    read_cat12_report,
    read_cat12_roi_xml,
    write_measures_tsv,
)
from anatcl_nipype.regional.tables import merge_measures_tables, report_to_row

LAYERS = ("layer1", "layer2", "layer3", "layer4")
#: AnatCL's regional triplet (cortical thickness, grey-matter volume, surface area).
APARC_TRIPLET = ("ThickAvg", "GrayVol", "SurfArea")


class _RegionalTableOutputSpec(TraitedSpec):
    out_tsv = File(exists=True, desc="one row: participant_id, <atlas>_<region>_<measure> ...")
    out_json = File(exists=True, desc="sidecar: atlas, region id/name, measure and units of "
                                      "each column; input files and their sha256")


def _participant_id(inputs, path):
    """The row label: the given one, else ``sub-<l>[_ses-<s>]`` from a CAT12 file's name
    (the same for every CAT12 output kind of one scan)."""
    if isdefined(inputs.participant_id):
        return inputs.participant_id
    return scan_id(participant_id_from_path(path), session_id_from_path(path))


def _provenance(interface, sources):
    """Sidecar entries naming the software and every input file with its sha256."""
    return {
        "GeneratedBy": [{"Name": "anatcl-nipype", "Version": anatcl_nipype.__version__,
                         "Interface": type(interface).__name__}],
        "Sources": [{"path": str(Path(path).resolve()), "sha256": sha256_file(path)}
                    for path in sources],
    }


def _write_row(runtime, name, participant_id, measures, row, sidecar):
    """Write one participant's row and sidecar into the node folder; return both paths."""
    tsv = Path(runtime.cwd) / f"{participant_id}_{name}.tsv"
    return write_measures_tsv({participant_id: row}, tsv, measures={participant_id: measures},
                              extra_sidecar=sidecar)


class CAT12ROIMeasuresInputSpec(BaseInterfaceInputSpec):
    label_roi = File(exists=True, desc="CAT12 volume ROI measures (label/catROI_*.xml)")
    label_rois = File(exists=True, desc="CAT12 surface ROI measures (label/catROIs_*.xml)")
    report = File(exists=True, desc="CAT12 report (report/cat_*.xml): TIV, IQR and tissue "
                                    "volumes become cat12_* columns")
    participant_id = traits.Str(desc="row label; default: sub-<label> from the file names")
    atlases = traits.List(traits.Str(), desc="atlases to keep (default: all in the files)")
    measures = traits.List(traits.Str(), desc="measures to keep, in this order (default: all, "
                                              "e.g. Vgm, Vwm, Vcsf, thickness)")


class CAT12ROIMeasures(SimpleInterface):
    """One participant's CAT12 ROI measures (and report values) as a one-row table.

    Reads any of ``label_roi`` (catROI_*.xml), ``label_rois`` (catROIs_*.xml) and
    ``report`` (cat_*.xml), the names of nipype's ``CAT12Segment`` outputs; inputs left
    undefined are skipped (a run without surfaces has no catROIs file). Writes
    ``<participant_id>_cat12rois.tsv`` and ``.json``.

    >>> from nipype import Node
    >>> node = Node(CAT12ROIMeasures(measures=["Vgm"]), name="cat12_rois")
    >>> node.inputs.measures
    ['Vgm']
    """

    input_spec = CAT12ROIMeasuresInputSpec
    output_spec = _RegionalTableOutputSpec

    def _run_interface(self, runtime):
        given = [name for name in ("label_roi", "label_rois", "report")
                 if isdefined(getattr(self.inputs, name))]
        if not given:
            raise RegionalError("CAT12ROIMeasures: no input file; connect label_roi "
                                "(catROI_*.xml), label_rois (catROIs_*.xml) or report "
                                "(cat_*.xml)")
        sources = [getattr(self.inputs, name) for name in given]
        participant_id = _participant_id(self.inputs, sources[0])
        measures = self._atlas_measures()
        measure_names = self.inputs.measures if isdefined(self.inputs.measures) else None
        row = measures_to_row(measures, measure_names)
        sidecar = _provenance(self, sources)
        if isdefined(self.inputs.report):
            report_row, descriptions = report_to_row(read_cat12_report(self.inputs.report))
            row.update(report_row)
            sidecar.update(descriptions)
        out_tsv, out_json = _write_row(runtime, "cat12rois", participant_id, measures, row,
                                       sidecar)
        self._results.update(out_tsv=str(out_tsv), out_json=str(out_json))
        return runtime

    def _atlas_measures(self):
        files = [path for path in (self.inputs.label_roi, self.inputs.label_rois)
                 if isdefined(path)]
        measures = {}
        for path in files:
            for atlas, region_measures in read_cat12_roi_xml(path).items():
                if atlas in measures:
                    raise RegionalError(f"{path}: atlas {atlas!r} is also in "
                                        f"{measures[atlas].source}; pass each atlas once")
                measures[atlas] = region_measures
        if not isdefined(self.inputs.atlases):
            return list(measures.values())
        missing = [atlas for atlas in self.inputs.atlases if atlas not in measures]
        if missing:
            raise RegionalError(f"atlas(es) {', '.join(missing)} not found in "
                                f"{', '.join(files) or 'the ROI files (none given)'}; "
                                f"found: {', '.join(measures) or 'no atlas'}")
        return [measures[atlas] for atlas in self.inputs.atlases]


class FreeSurferAparcMeasuresInputSpec(BaseInterfaceInputSpec):
    lh_stats = File(exists=True, mandatory=True, desc="stats/lh.aparc.stats (or aparc.*)")
    rh_stats = File(exists=True, mandatory=True, desc="stats/rh.aparc.stats of the same run")
    participant_id = traits.Str(desc="row label; default: the FreeSurfer subject folder "
                                     "(the parent of stats/)")


class FreeSurferAparcMeasures(SimpleInterface):
    """One participant's FreeSurfer cortical parcellation statistics as a one-row table.

    Columns ``aparc_<hemi><region>_<measure>``: AnatCL's triplet first (``ThickAvg`` mm,
    ``GrayVol`` mm3, ``SurfArea`` mm2), then the other columns of the files. Writes
    ``<participant_id>_aparc.tsv`` and ``.json``.

    >>> FreeSurferAparcMeasures(participant_id="sub-07").inputs.participant_id
    'sub-07'
    """

    input_spec = FreeSurferAparcMeasuresInputSpec
    output_spec = _RegionalTableOutputSpec

    def _run_interface(self, runtime):
        parcellation = read_aparc_pair(self.inputs.lh_stats, self.inputs.rh_stats)
        order = list(APARC_TRIPLET) + [name for name in parcellation.measures
                                       if name not in APARC_TRIPLET]
        participant_id = _participant_id(self.inputs, Path(self.inputs.lh_stats).parent.parent)
        out_tsv, out_json = _write_row(
            runtime, parcellation.atlas, participant_id, [parcellation],
            measures_to_row([parcellation], order),
            _provenance(self, [self.inputs.lh_stats, self.inputs.rh_stats]))
        self._results.update(out_tsv=str(out_tsv), out_json=str(out_json))
        return runtime


class _AtlasInputSpec(BaseInterfaceInputSpec):
    gm_modulated = File(exists=True, mandatory=True,
                        desc="CAT12 modulated normalised grey-matter map (mri/mwp1*.nii)")
    atlas = File(exists=True, mandatory=True, desc="integer label image on the map's grid")
    label_table = File(exists=True, desc="region ids and names (dseg.tsv, CAT12 csv, LUT)")
    atlas_name = traits.Str(desc="atlas name in column names; default: the atlas file name")
    participant_id = traits.Str(desc="row label; default: sub-<label> from the map's name")


class AtlasGMVolumesInputSpec(_AtlasInputSpec):
    resample = traits.Bool(False, usedefault=True,
                           desc="resample an atlas on another grid nearest-neighbour onto "
                                "the map's grid (refused otherwise)")


class AtlasGMVolumes(SimpleInterface):
    """Grey-matter volume (``Vgm``, cm3) and mean density (``mean_gm``) per atlas region.

    Wraps :func:`anatcl_nipype.regional.atlas_gm_volumes`: CAT12's ``Vgm`` for any label
    image. Writes ``<participant_id>_atlas-<name>_gmvolumes.tsv`` and ``.json``.

    >>> AtlasGMVolumes(atlas_name="hammers").inputs.resample
    False
    """

    input_spec = AtlasGMVolumesInputSpec
    output_spec = _RegionalTableOutputSpec

    def _run_interface(self, runtime):
        inputs = self.inputs
        volumes = atlas_gm_volumes(
            inputs.gm_modulated, inputs.atlas,
            label_table=inputs.label_table if isdefined(inputs.label_table) else None,
            atlas_name=inputs.atlas_name if isdefined(inputs.atlas_name) else None,
            resample=inputs.resample)
        sources = [inputs.gm_modulated, inputs.atlas]
        sources += [inputs.label_table] if isdefined(inputs.label_table) else []
        participant_id = _participant_id(inputs, inputs.gm_modulated)
        out_tsv, out_json = _write_row(runtime, f"atlas-{volumes.atlas}_gmvolumes",
                                       participant_id, [volumes], measures_to_row([volumes]),
                                       _provenance(self, sources))
        self._results.update(out_tsv=str(out_tsv), out_json=str(out_json))
        return runtime


class RegionPooledFeaturesInputSpec(EncoderOptionsInputSpec, _AtlasInputSpec):
    layers = traits.List(traits.Enum(*LAYERS), value=["layer3", "layer4"], usedefault=True,
                         desc="encoder stages to pool (strides 4, 8, 16, 32 voxels)")


class RegionPooledFeaturesOutputSpec(TraitedSpec):
    out_features = traits.List(File(exists=True), desc="one float32 .npy (regions x "
                               "channels) per layer, in the order of layers (a list, even of one)")
    out_regions = File(exists=True, desc="TSV: index, name, voxels, <layer>_units per region "
                                         "(the rows of every .npy)")
    out_tsv = File(exists=True, desc="one row: channel mean per region and layer, columns "
                                     "<atlas>_<region>_anatcl_<layer>")
    out_json = File(exists=True, desc="sidecar of out_tsv, with the weights, the method, the "
                                      "inputs and their sha256")


class RegionPooledFeatures(SimpleInterface):
    """AnatCL feature maps averaged within atlas regions (EXPLORATORY).

    Wraps :func:`anatcl_nipype.regional.pooled.region_pooled_features`: which regions
    the network's intermediate features respond to, not a validated measure. Takes the
    weights options of :class:`~anatcl_nipype.interfaces.encoder.AnatCLEncode` (the
    network is loaded once per process); ``use_head`` does not apply. The atlas must be
    on the CAT12 grid (or ``resample``). Writes ``<participant_id>_atlas-<name>_<layer>
    .npy`` per layer (regions x channels), ``..._regions.tsv`` (their rows), a one-row
    summary ``..._pooled.tsv`` (channel mean per region and layer, which
    :class:`MergeRegionalTables` joins into a group table) and its sidecar
    ``..._pooled.json`` (with the weights, the method and the inputs).

    >>> RegionPooledFeatures(layers=["layer4"], fold=1).inputs.layers
    ['layer4']
    """

    input_spec = RegionPooledFeaturesInputSpec
    output_spec = RegionPooledFeaturesOutputSpec

    def _run_interface(self, runtime):
        from anatcl_nipype.regional.pooled import region_pooled_features, write_pooled_features

        inputs = self.inputs
        if inputs.use_head:
            raise AnatCLError("RegionPooledFeatures: use_head does not apply; feature maps "
                              "come before the projection head")
        encoder = make_encoder(inputs)
        label_table = inputs.label_table if isdefined(inputs.label_table) else None
        pooled = region_pooled_features(
            encoder, inputs.gm_modulated, inputs.atlas, label_table=label_table,
            layers=inputs.layers, resample=inputs.resample,
            atlas_name=inputs.atlas_name if isdefined(inputs.atlas_name) else None)
        participant_id = _participant_id(inputs, inputs.gm_modulated)
        stem = f"{participant_id}_atlas-{pooled.atlas}"
        feature_files, regions = write_pooled_features(pooled, runtime.cwd, stem)
        summary = pooled.summary()
        sources = [inputs.gm_modulated, inputs.atlas] + ([label_table] if label_table else [])
        anatcl = dict(encoder.provenance, features=pooled.describe())
        del anatcl["output"]
        out_tsv, out_json = _write_row(runtime, f"atlas-{pooled.atlas}_pooled", participant_id,
                                       [summary], measures_to_row([summary]),
                                       dict(_provenance(self, sources), AnatCL=anatcl))
        self._results.update(out_features=[str(feature_files[layer]) for layer in inputs.layers],
                             out_regions=str(regions), out_tsv=str(out_tsv),
                             out_json=str(out_json))
        return runtime


class MergeRegionalTablesInputSpec(BaseInterfaceInputSpec):
    in_files = InputMultiObject(File(exists=True), mandatory=True,
                                desc="regional TSVs (one row per participant or more)")
    in_jsons = InputMultiObject(File(exists=True), desc="their JSON sidecars, to merge")
    out_name = traits.Str("regional", usedefault=True, desc="name of the merged files")


class MergeRegionalTables(SimpleInterface):
    """Join regional tables by participant: one row per participant, every column kept.

    Rows of one participant from several tables are joined into one; a value a
    participant lacks is ``n/a``; column order is stable (first table first). Use it
    as a JoinNode to make a group table from per-subject tables::

        merge = pe.JoinNode(MergeRegionalTables(), joinsource="subjects",
                            joinfield=["in_files", "in_jsons"], name="merge")

    >>> MergeRegionalTables(out_name="group").inputs.out_name
    'group'
    """

    input_spec = MergeRegionalTablesInputSpec
    output_spec = _RegionalTableOutputSpec

    def _run_interface(self, runtime):
        sidecars = self.inputs.in_jsons if isdefined(self.inputs.in_jsons) else ()
        out_tsv, out_json = merge_measures_tables(
            self.inputs.in_files, Path(runtime.cwd) / f"{self.inputs.out_name}.tsv",
            sidecar_paths=sidecars)
        self._results.update(out_tsv=str(out_tsv), out_json=str(out_json))
        return runtime

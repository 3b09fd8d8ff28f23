"""Relevance maps of CAT12 grey-matter maps for a saved probe: NIfTI, sidecars, region table.

:func:`probe_relevance_maps` loads the encoder and the probe once, computes each
participant's relevance (see :mod:`~anatcl_nipype.relevance.attribution` for the
methods, their cost and the baseline), and writes, atomically, into ``out_dir``::

    <participant_id>_desc-relevance_statmap.nii.gz   + .json   one per map
    group_desc-relevance_statmap.nii.gz               + .json   the oriented group mean
    group_desc-relevance_regions.tsv                  + .json   per atlas region (optional)

Maps are on the full CAT12 grid (121x145x121, CAT12's affine); the slices the encoder
never sees (axis 1 outside 8..135) are 0. Each sidecar names the method, baseline,
steps, the probe file and its SHA-256, the weights and the input map with its SHA-256.

>>> import numpy as np
>>> full = to_cat12_grid(np.ones(ANATCL_SHAPE, dtype=np.float32))
>>> full.shape, int(full.sum()) == int(np.prod(ANATCL_SHAPE)), float(full[:, :CROP_OFFSET].max())
((121, 145, 121), True, 0.0)
"""

import gzip
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import anatcl_nipype
from anatcl_nipype.bids import participant_ids_for
from anatcl_nipype.encoder.volumes import (
    ANATCL_SHAPE,
    CAT12_AFFINE,
    CAT12_SHAPE,
    CROP_OFFSET,
    PREPROCESSING,
    load_cat12_volume,
)
from anatcl_nipype.errors import AnatCLError
from anatcl_nipype.files import atomic_write, sha256_file, write_json_atomic
from anatcl_nipype.relevance.attribution import (
    GroupRelevance,
    attribute_volume,
    check_method,
    decision_score,
    forward_backward_passes,
)

DESC = "relevance"
SUFFIX = "statmap"
BASELINES = ("group_mean", "zeros")
GROUP_STATISTIC = ("mean over participants of relevance x sign(score - baseline score): "
                   "what moves participants away from the baseline, on either side")


@dataclass
class RelevanceOutputs:
    """The files :func:`probe_relevance_maps` wrote."""

    participant_ids: list
    maps: list
    sidecars: list
    group_map: Path
    group_sidecar: Path
    region_table: Path | None = None
    region_sidecar: Path | None = None
    scores: dict = field(default_factory=dict)


def probe_relevance_maps(in_files, probe, out_dir, *, weights=None, descriptor="global", fold=0,
                         device="auto", participant_ids=None, method="integrated_gradients",
                         baseline="group_mean", steps=20, internal_batch_size=1, window=12,
                         target_class=None, atlas=None, label_table=None, resample=False):
    """Write relevance maps of ``in_files`` (CAT12 ``mwp1`` maps) for the saved ``probe``.

    Parameters
    ----------
    probe : path
        A probe saved by ``save_probe``/``FitProbe`` on the AnatCL embedding alone; its
        card must name ``weights`` (or the released ``descriptor``/``fold``).
    baseline : {"group_mean", "zeros"} or path
        What relevance is measured against: the mean of ``in_files`` (default), the
        all-zero map, or a grey-matter map on the CAT12 grid (e.g. the controls' mean).
    steps, internal_batch_size, window
        Integrated-gradients points; volumes per network pass (memory); occlusion cube.
    atlas, label_table
        An integer label image on the CAT12 grid (and its names) for the region table.

    Costs ``steps`` forward and backward passes plus one forward pass per map
    (integrated gradients; about 210 s per map at 20 steps on a 2-core CPU, 1.1 GiB),
    see :func:`~anatcl_nipype.relevance.attribution.forward_backward_passes`.
    """
    from anatcl_nipype.relevance.probe_score import load_probe_score

    check_method(method)
    in_files = [str(path) for path in in_files]
    if not in_files:
        raise AnatCLError("no grey-matter maps given for relevance maps")
    ids = participant_ids_for(in_files, participant_ids)
    score, provenance = load_probe_score(probe, weights, descriptor, fold, device, target_class)
    reference, baseline_info = baseline_map(baseline, in_files, resample)
    baseline_score = decision_score(score, reference)
    forward, backward = forward_backward_passes(method, steps, window, ANATCL_SHAPE)
    common = {**provenance, "method": method, "baseline": baseline_info,
              "baseline_score": baseline_score,
              "passes_per_map": {"forward": forward, "backward": backward},
              "internal_batch_size": int(internal_batch_size),
              **({"steps": int(steps)} if method == "integrated_gradients"
                 else {"window_voxels": int(window)}),
              "software": _software(), "preprocessing": PREPROCESSING, "space": _space()}
    out_dir = Path(out_dir)
    group = GroupRelevance()
    outputs = RelevanceOutputs(ids, [], [], None, None)
    for participant_id, path in zip(ids, in_files):
        volume = load_cat12_volume(path, resample=resample)
        result = attribute_volume(score, volume, reference, method, steps, internal_batch_size,
                                  window, baseline_score)
        group.add(result)
        sidecar = {**common, "participant_id": participant_id, "score": result.score,
                   "input": {"path": str(Path(path).resolve()), "sha256": sha256_file(path)}}
        if method == "integrated_gradients":
            sidecar["completeness_delta"] = result.delta
        image, meta = write_relevance_map(out_dir / f"{participant_id}_desc-{DESC}_{SUFFIX}",
                                          result.relevance, sidecar)
        outputs.maps.append(image)
        outputs.sidecars.append(meta)
        outputs.scores[participant_id] = result.score
    group_sidecar = {**common, "statistic": GROUP_STATISTIC, "participants": ids,
                     "scores": outputs.scores}
    outputs.group_map, outputs.group_sidecar = write_relevance_map(
        out_dir / f"group_desc-{DESC}_{SUFFIX}", group.mean(), group_sidecar)
    if atlas is not None:
        outputs.region_table, outputs.region_sidecar = write_region_table(
            out_dir / f"group_desc-{DESC}_regions.tsv", outputs.group_map, atlas, label_table,
            resample)
    return outputs


def baseline_map(baseline, in_files, resample=False):
    """The baseline as a cropped array, and what it was for the sidecar."""
    if isinstance(baseline, (str, Path)) and str(baseline) not in BASELINES:
        volume = load_cat12_volume(baseline, resample=resample)
        return volume, {"kind": "map", "path": str(Path(baseline).resolve()),
                        "sha256": sha256_file(baseline)}
    if baseline == "zeros":
        return np.zeros(ANATCL_SHAPE, dtype=np.float32), {"kind": "zeros"}
    if baseline == "group_mean":
        total = np.zeros(ANATCL_SHAPE, dtype=np.float64)
        for path in in_files:  # streaming: one map in memory at a time
            total += load_cat12_volume(path, resample=resample)
        return (total / len(in_files)).astype(np.float32), {
            "kind": "group_mean", "n_maps": len(in_files)}
    raise AnatCLError(f"unknown baseline {baseline!r}: use one of {', '.join(BASELINES)} "
                      "or the path of a grey-matter map on the CAT12 grid")


def to_cat12_grid(relevance):
    """Put a 121x128x121 (cropped) map back on the 121x145x121 CAT12 grid, 0 outside."""
    if relevance.shape != ANATCL_SHAPE:
        raise AnatCLError(f"a relevance map of shape {relevance.shape}; expected the "
                          f"encoder's input shape {ANATCL_SHAPE}")
    full = np.zeros(CAT12_SHAPE, dtype=np.float32)
    full[:, CROP_OFFSET:CROP_OFFSET + ANATCL_SHAPE[1], :] = relevance
    return full


def write_relevance_map(stem, relevance, sidecar):
    """Write ``<stem>.nii.gz`` on the CAT12 grid and ``<stem>.json``; return both paths.

    >>> import tempfile, pathlib, nibabel as nib
    >>> stem = pathlib.Path(tempfile.mkdtemp()) / "sub-01_desc-relevance_statmap"
    >>> image, _ = write_relevance_map(stem, np.ones(ANATCL_SHAPE, np.float32), {"method": "x"})
    >>> nib.load(image).shape, image.name
    ((121, 145, 121), 'sub-01_desc-relevance_statmap.nii.gz')
    """
    import nibabel as nib

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    image = nib.Nifti1Image(to_cat12_grid(relevance), CAT12_AFFINE)
    image.header.set_xyzt_units("mm")
    image.header["descrip"] = b"anatcl_nipype probe relevance"
    path = stem.with_name(stem.name + ".nii.gz")
    with atomic_write(path) as tmp:
        tmp.write_bytes(gzip.compress(image.to_bytes(), compresslevel=6))
    return path, write_json_atomic(stem.with_name(stem.name + ".json"), sidecar)


def region_relevance(relevance_image, atlas, label_table=None, resample=False):
    """Mean relevance per atlas region, highest first: rows ``(region, index, mean, rank)``.

    Uses :func:`~anatcl_nipype.regional.atlas_gm_volumes` (its per-region mean of the
    map's values); regions without a voxel are left out.
    """
    from anatcl_nipype.regional.atlas import atlas_gm_volumes

    measures = atlas_gm_volumes(relevance_image, atlas, label_table=label_table,
                                atlas_name="relevance", resample=resample)
    means = measures.measures["mean_gm"]
    rows = [(name, index, float(mean)) for name, index, mean
            in zip(measures.names, measures.ids, means) if np.isfinite(mean)]
    rows.sort(key=lambda row: -row[2])
    return [(name, index, mean, rank) for rank, (name, index, mean) in enumerate(rows, start=1)]


def write_region_table(path, relevance_image, atlas, label_table=None, resample=False):
    """Write the :func:`region_relevance` TSV (``region, index, mean_relevance, rank``) and
    its JSON sidecar; return both paths."""
    rows = region_relevance(relevance_image, atlas, label_table, resample)
    lines = ["region\tindex\tmean_relevance\trank"]
    lines += [f"{name}\t{index}\t{mean:.6g}\t{rank}" for name, index, mean, rank in rows]
    path = Path(path)
    with atomic_write(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    sidecar = {"relevance_map": str(relevance_image), "atlas": str(atlas),
               "label_table": None if label_table is None else str(label_table),
               "mean_relevance": {"Description": "mean of the group relevance map over the "
                                                 "region's voxels"},
               "rank": {"Description": "1 = highest mean relevance"}}
    return path, write_json_atomic(path.with_suffix(".json"), sidecar)


def _software():
    import captum
    import torch

    return {"anatcl_nipype": anatcl_nipype.__version__, "torch": torch.__version__,
            "captum": captum.__version__}


def _space():
    return {"grid": "CAT12 MNI 1.5 mm, 121x145x121",
            "cropped": f"axis 1 outside {CROP_OFFSET}..{CROP_OFFSET + ANATCL_SHAPE[1] - 1} is 0 "
                       "(not seen by the encoder)"}

"""Region-pooled AnatCL features: the encoder's feature maps averaged within atlas regions.

EXPLORATORY. These numbers show which regions the network's intermediate features respond
to in one subject; they are not a validated anatomical measure, AnatCL was not trained
to make them meaningful region by region, and the receptive fields of layer3/layer4
units span several centimetres, far beyond the region they are pooled in. Use them to
explore the model, not as regional morphometry (use ``Vgm``, thickness... for that).

How a region is pooled. The grey-matter map is cropped to 121x128x121 as for encoding
(axis-1 indices 8..135) and the atlas is cropped the same way. A unit ``i`` (per axis)
of a layer with effective stride ``s`` (layer1 4, layer2 8, layer3 16, layer4 32) is
centred on input voxel ``i * s``; its *cell* is the ``s`` input voxels
``i*s - s/2 .. i*s + s/2 - 1`` per axis (``s**3`` voxels; voxels beyond the volume count
as uncovered, voxels whose cell lies past the last unit are left out). The weight of unit
``v`` for region ``r`` is the fraction of its cell the region covers; the pooled feature
is the weighted mean over units, ``W @ F.T / W.sum(1)`` for the (regions x units) weights
``W`` and the (channels x units) map ``F``. A region that covers no cell gets NaN.

On an 8-voxel cube with stride 4, unit 1 of an axis has the cell of voxels 2..5 and
unit 0 the voxels -2..1, half outside the volume:

>>> import numpy as np
>>> labels = np.zeros((8, 8, 8), dtype=np.intp); labels[2:6] = 5
>>> weights = region_coverage(labels, [5, 9], feature_shape=(2, 2, 2), stride=4)
>>> weights[0].reshape(2, 2, 2)[1].tolist(), weights[1].sum().item()
([[0.25, 0.5], [0.5, 1.0]], 0.0)
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anatcl_nipype.encoder.volumes import (
    CAT12_AFFINE,
    CAT12_SHAPE,
    check_finite_output,
    check_volume_values,
    crop_to_anatcl,
    load_cat12_volume,
)
from anatcl_nipype.errors import RegionalError
from anatcl_nipype.files import atomic_write
from anatcl_nipype.regional.atlas import (
    _describe_grid,
    _label_data,
    _load,
    _resample_nearest,
    _same_grid,
    _stem,
    read_label_table,
)
from anatcl_nipype.regional.measures import RegionMeasures

#: Effective stride of each stage of the AnatCL ResNet-18, in input voxels.
LAYER_STRIDES = {"layer1": 4, "layer2": 8, "layer3": 16, "layer4": 32}
DEFAULT_LAYERS = ("layer3", "layer4")
EXPLORATORY_NOTE = (
    "EXPLORATORY: AnatCL feature maps averaged within atlas regions; shows which regions "
    "the network's features respond to, not a validated regional measure"
)


@dataclass(frozen=True, eq=False)
class PooledFeatures:
    """Region-pooled feature maps of one subject.

    Attributes
    ----------
    atlas : str
        Atlas name.
    ids, names : tuple
        Region label values and names, in label-table (or increasing id) order.
    features : dict of str to numpy.ndarray
        Per layer, a float32 (regions x channels) matrix; NaN rows for regions that
        cover no unit of that layer.
    coverage : dict of str to numpy.ndarray
        Per layer, the summed weights of each region: its size in units of that layer.
    n_voxels : numpy.ndarray
        Atlas voxels of each region inside the cropped field of view.
    source : str
        The grey-matter map.
    """

    atlas: str
    ids: tuple
    names: tuple
    features: dict
    coverage: dict
    n_voxels: np.ndarray
    source: str

    def summary(self):
        """The channel mean per region and layer as :class:`RegionMeasures`.

        Measures are named ``anatcl_<layer>`` (``synthetic_lHip_anatcl_layer3`` as a
        table column); like the features, they are exploratory.
        """
        means = {f"anatcl_{layer}": matrix.mean(axis=1, dtype=np.float64)
                 for layer, matrix in self.features.items()}
        return RegionMeasures(self.atlas, self.ids, self.names, means,
                              {name: "" for name in means}, self.source)

    def describe(self):
        """What the features are, for JSON sidecars."""
        return {
            "Description": EXPLORATORY_NOTE,
            "Method": "map and atlas cropped to 121x128x121 (axis 1 indices 8..135); "
                      "weighted mean of each feature map over the units whose cell "
                      "(stride**3 input voxels centred on the unit) the region covers, "
                      "weights = covered fraction of the cell; NaN where a region covers "
                      "no unit",
            "Atlas": self.atlas,
            "Layers": {layer: {"stride": LAYER_STRIDES[layer],
                               "shape": list(matrix.shape),
                               "empty_regions": int(np.isnan(matrix).all(axis=1).sum())}
                       for layer, matrix in self.features.items()},
        }


def region_pooled_features(encoder_or_network, gm_map, atlas, label_table=None,
                           layers=DEFAULT_LAYERS, atlas_name=None, resample=False):
    """Average AnatCL feature maps within each atlas region (EXPLORATORY).

    Parameters
    ----------
    encoder_or_network : AnatCLEncoder, AnatCLNetwork or ResNet3d18
        The model, in eval mode. An :class:`~anatcl_nipype.encoder.AnatCLEncoder`'s
        precision (``bf16`` autocast) is honoured.
    gm_map : str, Path or numpy.ndarray
        A CAT12 ``mwp1`` map (checked like encoder input), or a 121x145x121 array.
    atlas : str, Path or nibabel image
        An integer label image on the CAT12 grid (121x145x121, 1.5 mm); 0 is background.
    label_table : str, Path, (ids, names) or None
        Regions to report, in this order (:func:`~anatcl_nipype.regional.read_label_table`);
        without it every label of the atlas (before cropping: a region the crop removes
        is reported, as NaN), in increasing order, named ``ROI<id>``.
    layers : sequence of str
        Stages among ``layer1`` .. ``layer4``.
    atlas_name : str or None
        Name of the atlas; the atlas file's name when None.
    resample : bool
        Resample an off-grid map (linear) and atlas (nearest) onto the CAT12 grid
        instead of refusing them.

    Returns :class:`PooledFeatures`. Raises :class:`RegionalError` for an atlas on
    another grid, unknown layers or duplicate region ids.
    """
    import torch

    layers = _checked_layers(layers)
    backbone, device, precision = _backbone(encoder_or_network)
    volume, source = _input_volume(gm_map, resample)
    full_labels, atlas_label, atlas_file = _atlas_labels(atlas, resample)
    ids, names = _regions(full_labels, label_table, atlas_label)
    labels = np.ascontiguousarray(crop_to_anatcl(full_labels))
    tensor = torch.from_numpy(volume)[None, None].to(device)
    if precision == "bf16":
        tensor = tensor.contiguous(memory_format=torch.channels_last_3d)
    with torch.inference_mode(), torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                                                enabled=precision == "bf16"):
        maps = backbone.feature_maps(tensor)
    features, coverage = {}, {}
    for layer in layers:
        feature_map = check_finite_output(maps[layer][0].float().cpu().numpy(), source,
                                          f"{layer} feature map")
        weights = region_coverage(labels, ids, feature_map.shape[1:], LAYER_STRIDES[layer])
        features[layer] = _finite_or_empty(pool_by_weights(feature_map, weights), weights,
                                           source, layer)
        coverage[layer] = weights.sum(axis=1)
    region = _region_index(labels, np.asarray(ids, dtype=np.int64))
    n_voxels = np.bincount(region[region >= 0], minlength=len(ids))
    return PooledFeatures(atlas_name or _stem(atlas_file), tuple(int(i) for i in ids), names,
                          features, coverage, n_voxels, source)


def region_coverage(labels, ids, feature_shape, stride):
    """Fraction of each unit's cell that each region covers: (regions x units) float64.

    ``labels`` is the cropped label image; units are numbered in C order over
    ``feature_shape``. One :func:`numpy.bincount` over the labelled voxels.
    """
    ids = np.asarray(ids, dtype=np.int64)
    region = _region_index(labels, ids)
    unit, inside = _unit_index(labels.shape, feature_shape, stride)
    keep = (region >= 0) & inside
    n_units = int(np.prod(feature_shape))
    counts = np.bincount(region[keep] * n_units + unit[keep], minlength=len(ids) * n_units)
    return counts.reshape(len(ids), n_units) / float(stride) ** 3


def pool_by_weights(feature_map, weights):
    """Weighted mean of a (channels, *grid) map per region: (regions x channels) float32.

    >>> pool_by_weights(np.arange(4.0).reshape(1, 2, 2), np.array([[1, 1, 0, 0], [0, 0, 0, 0]]))
    array([[0.5],
           [nan]], dtype=float32)
    """
    flat = feature_map.reshape(feature_map.shape[0], -1).astype(np.float64)
    total = weights.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (weights @ flat.T / total).astype(np.float32)


def write_pooled_features(pooled, out_dir, stem):
    """Write ``<stem>_<layer>.npy`` per layer and ``<stem>_regions.tsv``, atomically.

    Each ``.npy`` is a float32 (regions x channels) matrix whose rows follow the regions
    table: ``index``, ``name``, ``voxels`` (atlas voxels in the cropped field of view)
    and ``<layer>_units`` (the region's summed weights, its size in units of that layer).
    Returns ``({layer: npy path}, regions path)``.
    """
    out_dir = Path(out_dir)
    feature_files = {}
    for layer, matrix in pooled.features.items():
        feature_files[layer] = out_dir / f"{stem}_{layer}.npy"
        with atomic_write(feature_files[layer]) as tmp, open(tmp, "wb") as stream:
            np.save(stream, matrix.astype(np.float32))
    header = ["index", "name", "voxels", *(f"{layer}_units" for layer in pooled.features)]
    lines = ["\t".join(header)]
    for k, (region_id, name) in enumerate(zip(pooled.ids, pooled.names)):
        units = (repr(float(pooled.coverage[layer][k])) for layer in pooled.features)
        lines.append("\t".join([str(region_id), name, str(int(pooled.n_voxels[k])), *units]))
    regions = out_dir / f"{stem}_regions.tsv"
    with atomic_write(regions) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return feature_files, regions


def _finite_or_empty(pooled, weights, source, layer):
    """``pooled``, whose only NaN rows are regions covering no unit; never inf."""
    covered = weights.sum(axis=1) > 0
    check_finite_output(pooled[covered], source, f"region-pooled {layer} features")
    return pooled


def _checked_layers(layers):
    layers = tuple(layers)
    unknown = [layer for layer in layers if layer not in LAYER_STRIDES]
    if unknown or not layers:
        raise RegionalError(f"unknown layer(s) {unknown or '(none given)'}: choose among "
                            f"{', '.join(LAYER_STRIDES)}")
    return layers


def _backbone(encoder_or_network):
    """(ResNet3d18, device, precision) of an AnatCLEncoder, AnatCLNetwork or ResNet3d18."""
    network = getattr(encoder_or_network, "network", encoder_or_network)
    backbone = getattr(network, "encoder", network)
    if not hasattr(backbone, "feature_maps"):
        raise TypeError(f"expected an AnatCLEncoder, AnatCLNetwork or ResNet3d18, got "
                        f"{type(encoder_or_network).__name__}")
    if backbone.training:
        raise ValueError("the network is in training mode (BatchNorm would use batch "
                         "statistics); call network.eval() first")
    device = next(backbone.parameters()).device
    return backbone, device, getattr(encoder_or_network, "precision", "fp32")


def _input_volume(gm_map, resample):
    if isinstance(gm_map, np.ndarray):
        volume = crop_to_anatcl(np.asarray(gm_map, dtype=np.float32))
        check_volume_values(volume)
        return np.ascontiguousarray(volume), "<array>"
    return load_cat12_volume(gm_map, resample=resample), str(gm_map)


def _atlas_labels(atlas, resample):
    """The atlas' labels on the (uncropped) CAT12 grid, its name and its file."""
    image, name = _load(atlas, "atlas")
    filename = image.get_filename()
    if not _same_grid(CAT12_SHAPE, CAT12_AFFINE, image):
        if not resample:
            raise RegionalError(
                f"{name}: the atlas is on another grid "
                f"({_describe_grid(image.shape[:3], image.affine)}) than CAT12's 1.5 mm grid "
                f"({_describe_grid(CAT12_SHAPE, CAT12_AFFINE)}) that AnatCL reads; pass "
                "resample=True to resample it nearest-neighbour onto that grid")
        image = _resample_nearest(image, CAT12_SHAPE, CAT12_AFFINE)
    return _label_data(image, name), name, filename


def _regions(labels, label_table, atlas_name):
    if label_table is None:
        ids = np.unique(labels)
        ids = ids[ids != 0]
        return ids, tuple(f"ROI{region_id:03d}" for region_id in ids)
    if isinstance(label_table, (str, Path)):
        label_table = read_label_table(label_table)
    table_ids, table_names = label_table
    kept = [(int(i), str(n)) for i, n in zip(table_ids, table_names) if int(i) != 0]
    ids = np.array([region_id for region_id, _ in kept], dtype=np.int64)
    if len(np.unique(ids)) != len(ids):
        raise RegionalError(f"{atlas_name}: the label table lists a region id more than once")
    return ids, tuple(name for _, name in kept)


def _region_index(labels, ids):
    """Position of each voxel's label in ``ids``; -1 for labels not listed."""
    if not len(ids):
        return np.full(labels.shape, -1, dtype=np.int64)
    order = np.argsort(ids)
    sorted_ids = ids[order]
    position = np.minimum(np.searchsorted(sorted_ids, labels), len(ids) - 1)
    return np.where(sorted_ids[position] == labels, order[position], -1)


def _unit_index(shape, feature_shape, stride):
    """C-order unit number of each voxel's cell, and whether that unit exists."""
    cells = [(np.arange(n) + stride // 2) // stride for n in shape]
    inside = [cell < n_units for cell, n_units in zip(cells, feature_shape)]
    unit = (cells[0][:, None, None] * feature_shape[1] + cells[1][None, :, None]) \
        * feature_shape[2] + cells[2][None, None, :]
    return unit, inside[0][:, None, None] & inside[1][None, :, None] & inside[2][None, None, :]

"""CAT12 grey-matter maps as AnatCL input: checks, cropping and explicit resampling.

AnatCL takes CAT12's modulated, normalised grey-matter map (``mri/mwp1<name>.nii``)
on the default 1.5 mm MNI grid (121 x 145 x 121) and centre-crops the second axis
to 128 voxels (indices 8..135). Intensities go in as CAT12 wrote them.

>>> import numpy as np
>>> crop_to_anatcl(np.zeros(CAT12_SHAPE, dtype=np.float32)).shape
(121, 128, 121)
"""

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from anatcl_nipype.errors import VolumeError

CAT12_SHAPE = (121, 145, 121)
ANATCL_SHAPE = (121, 128, 121)
CAT12_AFFINE = np.array([
    [-1.5, 0.0, 0.0, 90.0],
    [0.0, 1.5, 0.0, -126.0],
    [0.0, 0.0, 1.5, -72.0],
    [0.0, 0.0, 0.0, 1.0],
])
#: Offset of the centre crop along the second axis: (145 - 128) // 2.
CROP_OFFSET = (CAT12_SHAPE[1] - ANATCL_SHAPE[1]) // 2
#: Largest difference (mm) between a file's affine and the CAT12 grid that is accepted.
AFFINE_TOLERANCE_MM = 1e-3
#: Grey-matter maps hold densities of about 0 to 1; whole numbers above this are labels.
LABEL_IMAGE_MIN_PEAK = 2.0
#: Voxels of the CAT12 grid: the most a map read without resampling may declare.
CAT12_VOXELS = CAT12_SHAPE[0] * CAT12_SHAPE[1] * CAT12_SHAPE[2]
#: Most voxels any image may declare (a 0.5 mm MNI grid has about 58 million); a header
#: asking for more is refused before anything is allocated.
MAX_VOXELS = 64 * 1024 ** 2
#: Most bytes a header and its extensions may take before the data (``vox_offset``).
MAX_HEADER_BYTES = 16 * 1024 ** 2
#: Bytes a ``.nii.gz`` may inflate to beyond its declared header and data.
GZIP_SLACK_BYTES = 1024 ** 2
_NIFTI_HEADER_SIZES = {348: "Nifti1", 540: "Nifti2"}
#: The preprocessing recorded in every provenance sidecar.
PREPROCESSING = {
    "input": "CAT12 modulated normalised grey matter (mwp1), MNI 1.5 mm grid 121x145x121",
    "crop": f"axis 1 indices {CROP_OFFSET}..{CROP_OFFSET + ANATCL_SHAPE[1] - 1} -> 121x128x121",
    "intensity": "as written by CAT12 (float32, no normalisation)",
}


def crop_to_anatcl(volume):
    """Centre-crop a CAT12-grid array (121x145x121) to the encoder's 121x128x121.

    An array that is already 121x128x121 is returned unchanged.
    """
    if volume.shape == ANATCL_SHAPE:
        return volume
    if volume.shape != CAT12_SHAPE:
        raise VolumeError(
            f"array of shape {volume.shape}: expected the CAT12 grid {CAT12_SHAPE} "
            f"or the cropped {ANATCL_SHAPE}"
        )
    return volume[:, CROP_OFFSET:CROP_OFFSET + ANATCL_SHAPE[1], :]


def load_cat12_volume(path, resample=False):
    """Read a CAT12 ``mwp1`` map, check it, and return the cropped float32 array.

    Parameters
    ----------
    path : str or Path
        A ``.nii`` or ``.nii.gz`` grey-matter map.
    resample : bool
        Resample (linear) a map on another MNI grid onto the CAT12 1.5 mm grid
        instead of refusing it. Off by default: embeddings of resampled maps
        differ from those of maps CAT12 wrote on its own grid.

    Raises :class:`VolumeError` naming the file and the problem for unreadable
    files, 4D images, other grids, NaN/inf voxels, empty maps and label images.
    """
    path = Path(path)

    def check_grid(header):
        shape = _three_d_shape(header.get_data_shape(), path)
        if not resample and not _on_grid(shape, header.get_best_affine()):
            raise VolumeError(_off_grid_message(shape, header, path))

    image = read_nifti(path, accept=check_grid)
    shape = _three_d_shape(image.shape, path)
    volume = _image_data(image, path).reshape(shape)
    check_volume_values(volume, path)
    if not _on_grid(volume.shape, image.affine):
        volume = _resample_to_cat12(volume, image.affine)
    return np.ascontiguousarray(crop_to_anatcl(volume))


def check_volume_values(volume, source="array"):
    """Refuse NaN/inf voxels and empty (all-zero) maps."""
    finite = np.isfinite(volume)
    if not finite.all():
        count = int((~finite).sum())
        raise VolumeError(f"{source}: {count} voxel{' is' if count == 1 else 's are'} NaN or "
                          "infinite; re-run CAT12 or fix the map")
    if not volume.any():
        raise VolumeError(f"{source}: the map is empty (all voxels are 0)")
    peak = float(volume.max())
    if peak > LABEL_IMAGE_MIN_PEAK and np.array_equal(volume, np.rint(volume)):
        raise VolumeError(
            f"{source}: every voxel is a whole number, up to {peak:g}: this looks like a "
            "label/atlas image, not a CAT12 grey-matter map (mwp1, values about 0 to 1)"
        )


def check_finite_output(values, source, what="embedding"):
    """Refuse an encoder output holding NaN or inf before it is written; return it.

    ``values`` is a numpy array or a torch tensor of any precision and device (e.g. one
    volume's embedding); ``source`` names the input it was computed from. Raises
    :class:`VolumeError` saying how many values are not finite.

    >>> check_finite_output(np.ones(3, dtype=np.float32), "sub-01.nii").tolist()
    [1.0, 1.0, 1.0]
    >>> check_finite_output(np.array([1.0, np.nan]), "sub-01.nii")
    Traceback (most recent call last):
    ...
    anatcl_nipype.errors.VolumeError: sub-01.nii: the embedding has 1 of 2 values NaN or ...
    """
    if hasattr(values, "isfinite"):  # a torch tensor: counted where it lives, any dtype
        bad, total = int((~values.isfinite()).sum()), values.numel()
    else:
        array = np.asarray(values)
        bad, total = int(np.count_nonzero(~np.isfinite(array))), array.size
    if bad:
        raise VolumeError(f"{source}: the {what} has {bad} of {total} values NaN or infinite; "
                          "nothing was written for it. Rerun in fp32 (--precision fp32); if "
                          "it persists, check the map and the weights")
    return values


def read_nifti(path, max_voxels=MAX_VOXELS, accept=None):
    """Open a ``.nii``/``.nii.gz`` after checking its header, reading at most what it declares.

    The header is read on its own first: an image must be NIfTI-1 or NIfTI-2 of a real
    numeric type with at most ``max_voxels`` voxels and :data:`MAX_HEADER_BYTES` of header
    and extensions. A ``.nii`` must be at least as long as it declares (its data are then
    memory-mapped); a ``.nii.gz`` is decompressed with a cap of the declared size plus
    :data:`GZIP_SLACK_BYTES`, so a file that inflates to gigabytes is refused without
    being inflated. ``accept``, when given, is called with the header before any data
    is read and raises to refuse it (e.g. a shape off the CAT12 grid). Raises
    :class:`VolumeError` naming the file.

    >>> import tempfile, pathlib, nibabel as nib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "map.nii.gz"
    >>> nib.save(nib.Nifti1Image(np.ones((2, 3, 4), dtype=np.float32), np.eye(4)), path)
    >>> read_nifti(path).shape
    (2, 3, 4)
    >>> read_nifti(path, max_voxels=10)
    Traceback (most recent call last):
    ...
    anatcl_nipype.errors.VolumeError: ...map.nii.gz: the header declares shape (2, 3, 4) ...
    """
    import nibabel as nib

    path = _existing_file(Path(path))
    compressed = _is_gzip(path)
    header_class = _header_class(_read_prefix(path, compressed, 540), path)
    header = header_class.from_header(_checked_header(path, compressed, header_class))
    data_end = _check_declared_size(header, path, max_voxels)
    if accept is not None:
        accept(header)
    image_class = getattr(nib, header_class.__name__.replace("Header", "Image"))
    try:
        if not compressed:
            if path.stat().st_size < data_end:
                raise VolumeError(f"{path}: truncated: {path.stat().st_size} bytes, but its "
                                  f"header declares {data_end}; copy the complete file again")
            return image_class.from_filename(str(path))
        image = image_class.from_bytes(_inflate_bounded(path, data_end))
        image.set_filename(str(path))  # data stay in memory; the name is for messages
        return image
    except VolumeError:
        raise
    except Exception as error:  # nibabel raises many types for corrupt files
        raise VolumeError(f"{path}: cannot read it as NIfTI ({type(error).__name__}: "
                          f"{error}); check the file is a complete .nii/.nii.gz") from None


def _existing_file(path):
    if path.is_dir():
        raise VolumeError(f"{path}: is a directory, not a NIfTI file")
    if not path.is_file():
        if path.is_symlink():
            raise VolumeError(f"{path}: a broken symbolic link or a link loop (it points to "
                              f"{os.readlink(path)}); link it to the real map")
        raise VolumeError(f"{path}: no such file")
    return path


def _is_gzip(path):
    with open(path, "rb") as stream:
        return stream.read(2) == b"\x1f\x8b"


def _read_prefix(path, compressed, size):
    try:
        with (gzip.open(path, "rb") if compressed else open(path, "rb")) as stream:
            return stream.read(size)
    except (OSError, EOFError, zlib.error) as error:
        raise VolumeError(f"{path}: cannot read it as NIfTI ({type(error).__name__}: {error}); "
                          "check the file is a complete .nii/.nii.gz") from None


def _header_class(prefix, path):
    import nibabel as nib

    if not prefix:
        raise VolumeError(f"{path}: cannot read it as NIfTI (ImageFileError: Empty file: "
                          f"'{path}'); check the file is a complete .nii/.nii.gz")
    for order in ("little", "big"):
        kind = _NIFTI_HEADER_SIZES.get(int.from_bytes(prefix[:4], order))
        if kind and len(prefix) >= {"Nifti1": 348, "Nifti2": 540}[kind]:
            return getattr(nib, f"{kind}Header")
    raise VolumeError(f"{path}: cannot read it as NIfTI (no NIfTI-1/NIfTI-2 header); "
                      "check the file is a complete .nii/.nii.gz")


def _checked_header(path, compressed, header_class):
    size = 348 if header_class.__name__ == "Nifti1Header" else 540
    try:
        return header_class(_read_prefix(path, compressed, size), check=True)
    except Exception as error:  # nibabel raises HeaderDataError, ValueError...
        raise VolumeError(f"{path}: cannot read it as NIfTI (invalid header: "
                          f"{type(error).__name__}: {error}); the file is damaged") from None


def _check_declared_size(header, path, max_voxels):
    """Check dtype, shape and offset of ``header``; return where its data end (bytes)."""
    dtype = header.get_data_dtype()
    if dtype.kind not in "biuf":
        raise VolumeError(f"{path}: voxels of type {dtype} (not real numbers); pass a "
                          "grey-matter map or label image of integer or float type")
    shape = tuple(int(n) for n in header.get_data_shape())
    voxels = 1
    for n in shape:
        voxels *= n
    if voxels > max_voxels:
        raise VolumeError(f"{path}: the header declares shape {shape} ({voxels} voxels); at "
                          f"most {max_voxels} are read (the CAT12 grid {CAT12_SHAPE} has "
                          f"{CAT12_VOXELS}). Refused before reading data: pass a CAT12 map")
    offset = int(header.get_data_offset())
    if not 0 <= offset <= MAX_HEADER_BYTES:
        raise VolumeError(f"{path}: the header puts the data at byte {offset}; at most "
                          f"{MAX_HEADER_BYTES} bytes of header and extensions are read")
    return max(offset, header.single_vox_offset) + voxels * dtype.itemsize


def _inflate_bounded(path, data_end):
    """The decompressed bytes of a ``.nii.gz``, refusing more than it declares plus slack."""
    limit = data_end + GZIP_SLACK_BYTES
    content = _read_prefix(path, True, limit + 1)
    if len(content) > limit:
        raise VolumeError(f"{path}: decompresses to more than {limit} bytes although its "
                          f"header declares {data_end}; refused (a damaged or malicious "
                          "file). Pass the map CAT12 wrote")
    if len(content) < data_end:
        raise VolumeError(f"{path}: truncated: {len(content)} bytes once decompressed, but "
                          f"its header declares {data_end}; copy the complete file again")
    return content


def _image_data(image, path):
    try:
        return image.get_fdata(dtype=np.float32)  # scale factors applied
    except Exception as error:  # nibabel raises many types for corrupt files
        raise VolumeError(f"{path}: cannot read it as NIfTI ({type(error).__name__}: "
                          f"{error}); check the file is a complete .nii/.nii.gz") from None


def _three_d_shape(shape, path):
    shape = tuple(int(n) for n in shape)
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise VolumeError(f"{path}: a {len(shape)}D image of shape {shape}; "
                          "AnatCL needs one 3D grey-matter map (mwp1)")
    return shape


def _on_grid(shape, affine):
    if shape == CAT12_SHAPE:
        reference = CAT12_AFFINE
    elif shape == ANATCL_SHAPE:  # a cropped map: the origin moves by CROP_OFFSET voxels
        reference = CAT12_AFFINE.copy()
        reference[:3, 3] += reference[:3, 1] * CROP_OFFSET
    else:
        return False
    return np.allclose(affine, reference, atol=AFFINE_TOLERANCE_MM)


def _off_grid_message(shape, header, path):
    zooms = tuple(round(float(z), 3) for z in header.get_zooms()[:3])
    return (
        f"{path}: not on the CAT12 1.5 mm MNI grid (shape {shape}, voxel size {zooms} mm; "
        f"expected shape {CAT12_SHAPE} with affine diag(-1.5, 1.5, 1.5) and origin "
        "(90, -126, -72)). Pass CAT12's mwp1 map; a native-space p1 map is not AnatCL input. "
        "For an MNI-space map on another grid, resample it explicitly: --resample on the "
        "command line, resample=True in Python."
    )


def _resample_to_cat12(volume, affine):
    import nibabel as nib
    from nilearn.image import resample_img

    resampled = resample_img(nib.Nifti1Image(volume, affine), target_affine=CAT12_AFFINE,
                             target_shape=CAT12_SHAPE, interpolation="continuous",
                             force_resample=True, copy_header=True)
    return np.asarray(resampled.dataobj, dtype=np.float32)

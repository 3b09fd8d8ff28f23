"""CAT12 grey-matter maps as AnatCL input: checks, cropping and explicit resampling.

AnatCL takes CAT12's modulated, normalised grey-matter map (``mri/mwp1<name>.nii``)
on the default 1.5 mm MNI grid (121 x 145 x 121) and centre-crops the second axis
to 128 voxels (indices 8..135). Intensities go in as CAT12 wrote them.

>>> import numpy as np
>>> crop_to_anatcl(np.zeros(CAT12_SHAPE, dtype=np.float32)).shape
(121, 128, 121)
"""

import os
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
    image, volume = _read_image(Path(path))
    if volume.ndim == 4 and volume.shape[3] == 1:
        volume = volume[..., 0]
    if volume.ndim != 3:
        raise VolumeError(f"{path}: a {volume.ndim}D image of shape {volume.shape}; "
                          "AnatCL needs one 3D grey-matter map (mwp1)")
    check_volume_values(volume, path)
    if not _on_grid(volume.shape, image.affine):
        if not resample:
            raise VolumeError(_off_grid_message(volume.shape, image, path))
        volume = _resample_to_cat12(volume, image.affine)
    return np.ascontiguousarray(crop_to_anatcl(volume))


def check_volume_values(volume, source="array"):
    """Refuse NaN/inf voxels and empty (all-zero) maps."""
    finite = np.isfinite(volume)
    if not finite.all():
        raise VolumeError(f"{source}: {int((~finite).sum())} voxels are NaN or infinite; "
                          "re-run CAT12 or fix the map")
    if not volume.any():
        raise VolumeError(f"{source}: the map is empty (all voxels are 0)")
    peak = float(volume.max())
    if peak > LABEL_IMAGE_MIN_PEAK and np.array_equal(volume, np.rint(volume)):
        raise VolumeError(
            f"{source}: every voxel is a whole number, up to {peak:g}: this looks like a "
            "label/atlas image, not a CAT12 grey-matter map (mwp1, values about 0 to 1)"
        )


def _read_image(path):
    import nibabel as nib

    if path.is_dir():
        raise VolumeError(f"{path}: is a directory, not a NIfTI file")
    if not path.is_file():
        if path.is_symlink():
            raise VolumeError(f"{path}: a broken symbolic link or a link loop (it points to "
                              f"{os.readlink(path)}); link it to the real map")
        raise VolumeError(f"{path}: no such file")
    try:
        image = nib.load(path)
        volume = image.get_fdata(dtype=np.float32)  # scale factors applied
    except Exception as error:  # nibabel raises many types for corrupt files
        raise VolumeError(f"{path}: cannot read it as NIfTI ({type(error).__name__}: "
                          f"{error}); check the file is a complete .nii/.nii.gz") from None
    return image, volume


def _on_grid(shape, affine):
    if shape == CAT12_SHAPE:
        reference = CAT12_AFFINE
    elif shape == ANATCL_SHAPE:  # a cropped map: the origin moves by CROP_OFFSET voxels
        reference = CAT12_AFFINE.copy()
        reference[:3, 3] += reference[:3, 1] * CROP_OFFSET
    else:
        return False
    return np.allclose(affine, reference, atol=AFFINE_TOLERANCE_MM)


def _off_grid_message(shape, image, path):
    zooms = tuple(round(float(z), 3) for z in image.header.get_zooms()[:3])
    return (
        f"{path}: not on the CAT12 1.5 mm MNI grid (shape {shape}, voxel size {zooms} mm; "
        f"expected shape {CAT12_SHAPE} with affine diag(-1.5, 1.5, 1.5) and origin "
        "(90, -126, -72)). Pass CAT12's mwp1 map; a native-space p1 map is not AnatCL input. "
        "For an MNI-space map on another grid, resample explicitly (resample=True)."
    )


def _resample_to_cat12(volume, affine):
    import nibabel as nib
    from nilearn.image import resample_img

    resampled = resample_img(nib.Nifti1Image(volume, affine), target_affine=CAT12_AFFINE,
                             target_shape=CAT12_SHAPE, interpolation="continuous",
                             force_resample=True, copy_header=True)
    return np.asarray(resampled.dataobj, dtype=np.float32)

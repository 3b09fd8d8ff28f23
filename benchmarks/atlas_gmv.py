"""Benchmark: grey-matter volume per atlas label, anatcl_nipype vs nilearn, same run.

A full-size CAT12-grid map (121 x 145 x 121, 1.5 mm) and a 100-region label image are
written as uncompressed NIfTI. Per subject, both methods read the GM map from disk and
sum it per label with the atlas already in memory:

- ``atlas_gm_volumes(gm_path, atlas_image)`` (one ``np.bincount`` pass per measure);
- nilearn's ``NiftiLabelsMasker(labels_img=atlas_image, strategy="sum")``, fitted once,
  then ``transform(gm_path)``.

Both must give the same per-region sums. The median time of several repetitions is
printed as a Markdown table and written to the section ``## Atlas grey-matter volumes``
of ``benchmarks/RESULTS.md`` (other sections are kept).

Run from the repository root with the package importable (installed, or
``PYTHONPATH=.``): ``python benchmarks/atlas_gmv.py [--repeats 9]``
"""

import argparse
import tempfile
import warnings
from pathlib import Path

import nibabel as nib
import nilearn
import numpy as np
from results import machine_line, median_seconds, write_section

from anatcl_nipype.regional import atlas_gm_volumes

SHAPE = (121, 145, 121)
AFFINE = np.array([[-1.5, 0, 0, 90.0], [0, 1.5, 0, -126.0], [0, 0, 1.5, -72.0], [0, 0, 0, 1]])
N_REGIONS = 100
SECTION = "## Atlas grey-matter volumes"


def synthetic_inputs(folder, seed=0):
    """A GM map of densities in [0, 1) and 100 block regions inside an ellipsoid."""
    rng = np.random.default_rng(seed)
    gm = rng.random(SHAPE, dtype=np.float32)
    i, j, k = np.indices(SHAPE)
    centre = (np.array(SHAPE) - 1) / 2
    inside = (((i - centre[0]) / 66) ** 2 + ((j - centre[1]) / 80) ** 2
              + ((k - centre[2]) / 66) ** 2) <= 1
    blocks = (i * 5 // SHAPE[0]) * 20 + (j * 5 // SHAPE[1]) * 4 + (k * 4 // SHAPE[2]) + 1
    labels = np.where(inside, blocks, 0).astype(np.int16)
    gm_path = Path(folder) / "mwp1sub-bench_T1w.nii"
    nib.save(nib.Nifti1Image(gm, AFFINE), gm_path)
    return gm_path, nib.Nifti1Image(labels, AFFINE)


def run(repeats):
    from nilearn.maskers import NiftiLabelsMasker

    with tempfile.TemporaryDirectory() as folder:
        gm_path, atlas = synthetic_inputs(folder)
        voxel_mm3 = abs(np.linalg.det(AFFINE[:3, :3]))
        ours = atlas_gm_volumes(gm_path, atlas, atlas_name="blocks")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            masker = NiftiLabelsMasker(labels_img=atlas, strategy="sum").fit()
            theirs = np.ravel(masker.transform(gm_path))
            region_ids = [masker.region_ids_[column] for column in range(theirs.size)]
            assert list(ours.ids) == region_ids and len(region_ids) == N_REGIONS
            ours_sums = ours.measures["Vgm"] * 1000.0 / voxel_mm3
            max_rel = float(np.max(np.abs(ours_sums - theirs) / np.abs(theirs)))
            assert max_rel < 1e-6, f"sums differ: max relative difference {max_rel:g}"
            ours_s = median_seconds(lambda: atlas_gm_volumes(gm_path, atlas), repeats)
            theirs_s = median_seconds(lambda: masker.transform(gm_path), repeats)
    return ours_s, theirs_s, max_rel


def markdown(ours_s, theirs_s, max_rel, repeats):
    setup = (f"`benchmarks/atlas_gmv.py`: one {SHAPE[0]}x{SHAPE[1]}x{SHAPE[2]} float32 GM map "
             "(1.5 mm CAT12 grid, uncompressed `.nii`, read from disk each time) and a "
             f"{N_REGIONS}-region int16 label image held in memory; median of {repeats} "
             "runs after one warm-up, per subject.")
    machine = (f"{machine_line()}, numpy {np.__version__}, nibabel {nib.__version__}, "
               f"nilearn {nilearn.__version__}.")
    nilearn_row = (f"| nilearn `NiftiLabelsMasker(strategy=\"sum\").transform` | "
                   f"{theirs_s * 1000:.1f} ms | {theirs_s / ours_s:.2f} |")
    return "\n".join([
        SECTION, "", setup, "", machine, "",
        "| method | time per subject | time / atlas_gm_volumes |",
        "|---|---|---|",
        f"| `atlas_gm_volumes` (np.bincount) | {ours_s * 1000:.1f} ms | 1.00 |",
        nilearn_row,
        "",
        f"Same per-region sums: max relative difference {max_rel:.1e}.",
        "",
    ])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    ours_s, theirs_s, max_rel = run(args.repeats)
    section = markdown(ours_s, theirs_s, max_rel, args.repeats)
    print(section)
    write_section(section)


if __name__ == "__main__":
    main()

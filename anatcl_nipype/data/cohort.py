"""SYNTHETIC CAT12-like cohorts with known, planted effects (tests and the demo).

No real MRI can be downloaded on the machines this project is built on, so
:func:`make_cat12_cohort` makes a cohort that only *mimics* CAT12's output: it
is no scan of anyone and must never be mistaken for real data. It starts from
nilearn's MNI152 grey-matter template (shipped with nilearn, no download),
resampled onto the CAT12 1.5 mm grid, and for every subject applies effects of
known size:

- age: grey matter falls linearly with age, :data:`GLOBAL_AGE_LOSS_PER_DECADE`
  everywhere and faster in the regions of :data:`REGIONAL_AGE_LOSS_PER_DECADE`;
- diagnosis: patients (``AD``) lose :data:`DIAGNOSIS_ATROPHY` of their grey
  matter in four named regions, times a per-patient severity; controls (``CN``)
  lose nothing; an MMSE-like score falls with that severity;
- head size: the map scales with the subject's TIV (larger for ``M``);
- site: a per-site intensity scale and offset;
- noise: Gaussian-smoothed white noise, multiplicative, so the background stays 0.

Each subject's map is, voxel by voxel (``T`` the template, ``a`` the age rate,
``f`` the diagnosis atrophy, ``s`` the severity, 0 for controls)::

    mwp1 = GM_SCALE * T * (site_scale * TIV / TIV_REFERENCE_CM3
                           * (1 - a * (age - AGE_REFERENCE) / 10) * (1 - f * s)
                           + site_offset) * (1 + noise)

Written in CAT12's layout, with every number CAT12 would report computed from
that subject's map, and the ground truth beside ``participants.tsv``::

    <out>/participants.tsv, participants.json, ground_truth.json
    <out>/atlas/atlas-synthetic_dseg.nii.gz, atlas-synthetic_dseg.tsv
    <out>/sub-01/mri/mwp1sub-01_T1w.nii          (layout="plain")
    <out>/sub-01/label/catROI_sub-01_T1w.xml     volume ROIs, atlas "synthetic"
    <out>/sub-01/label/catROIs_sub-01_T1w.xml    thickness, atlas "aparc_DK40"
    <out>/sub-01/report/cat_sub-01_T1w.xml       TIV, tissue volumes, IQR
    <out>/derivatives/CAT12.9/sub-01/anat/{mri,label,report}/...  (layout="bids")

>>> import tempfile
>>> cohort = make_cat12_cohort(tempfile.mkdtemp(), n_subjects=4)  # doctest: +SKIP
>>> cohort.gm_map("sub-01").name  # doctest: +SKIP
'mwp1sub-01_T1w.nii'
"""

import functools
import gzip
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anatcl_nipype import __version__
from anatcl_nipype.data.cat12_xml_writer import write_cat12_xml
from anatcl_nipype.data.synthetic_atlas import make_synthetic_atlas, region_table
from anatcl_nipype.encoder.templates import load_gm_template
from anatcl_nipype.encoder.volumes import CAT12_AFFINE, CAT12_SHAPE
from anatcl_nipype.errors import AnatCLError
from anatcl_nipype.files import atomic_write, write_json_atomic

LAYOUTS = ("plain", "bids")
#: Folder of the CAT12 derivatives in the ``bids`` layout.
BIDS_PIPELINE_DIR = Path("derivatives") / "CAT12.9"
#: Name of the synthetic atlas: its element in ``catROI_*.xml`` and its file names.
ATLAS_NAME = "synthetic"
SURFACE_ATLAS_NAME = "aparc_DK40"
VOXEL_CM3 = 1.5 ** 3 / 1000
#: What every synthetic XML file says about where it came from.
SYNTHETIC_NOTE = "SYNTHETIC: written by anatcl_nipype.data, not by CAT12"
CAT12_VERSION = "CAT12.9"

#: Scales the template's GM probability so that a 20-year-old with a TIV of
#: 1500 cm3 has about 700 cm3 of grey matter, as CAT12 reports for young adults.
GM_SCALE = 0.7
TIV_REFERENCE_CM3 = 1500.0
#: TIV (cm3) mean and standard deviation by sex.
TIV_BY_SEX = {"F": (1400.0, 80.0), "M": (1580.0, 90.0)}
AGE_RANGE = (20.0, 85.0)
AGE_REFERENCE = 20.0
#: Relative grey-matter loss per decade past :data:`AGE_REFERENCE`.
GLOBAL_AGE_LOSS_PER_DECADE = 0.02
REGIONAL_AGE_LOSS_PER_DECADE = {
    "lSuperiorFrontal": 0.045, "rSuperiorFrontal": 0.045,
    "lInferiorFrontal": 0.045, "rInferiorFrontal": 0.045,
}
#: Relative grey-matter loss of a patient of severity 1 (controls: none).
DIAGNOSIS_ATROPHY = {
    "lMedialTemporal": 0.20, "rMedialTemporal": 0.20,
    "lPrecuneus": 0.15, "rPrecuneus": 0.15,
}
#: Patients' severities are drawn uniformly from this range (mean 1).
SEVERITY_RANGE = (0.75, 1.25)
SITE_SCALE_RANGE = (0.92, 1.08)
SITE_OFFSET_RANGE = (-0.03, 0.03)
NOISE_SD = 0.05
NOISE_FWHM_MM = 6.0
#: MMSE-like score: controls about 29, patients 29 - MMSE_DROP * severity.
MMSE_CONTROL, MMSE_DROP = 29.0, 10.0
MMSE_NOISE_SD = {"CN": 0.8, "AD": 1.5}

#: Desikan-Killiany regions in the order CAT12 writes them in ``aparc_DK40``:
#: (name, FreeSurfer colour-table RGB, plausible mean thickness in mm; None for
#: the medial-wall entries, written as NaN as CAT12 does).
DK40_REGIONS = (
    ("unknown", (25, 5, 25), None),
    ("bankssts", (25, 100, 40), 2.5),
    ("caudalanteriorcingulate", (125, 100, 160), 2.7),
    ("caudalmiddlefrontal", (100, 25, 0), 2.6),
    ("corpuscallosum", (120, 70, 50), None),
    ("cuneus", (220, 20, 100), 1.9),
    ("entorhinal", (220, 20, 10), 3.3),
    ("fusiform", (180, 220, 140), 2.7),
    ("inferiorparietal", (220, 60, 220), 2.5),
    ("inferiortemporal", (180, 40, 120), 2.8),
    ("isthmuscingulate", (140, 20, 140), 2.5),
    ("lateraloccipital", (20, 30, 140), 2.2),
    ("lateralorbitofrontal", (35, 75, 50), 2.7),
    ("lingual", (225, 140, 140), 2.0),
    ("medialorbitofrontal", (200, 35, 75), 2.5),
    ("middletemporal", (160, 100, 50), 2.9),
    ("parahippocampal", (20, 220, 60), 2.7),
    ("paracentral", (60, 220, 60), 2.4),
    ("parsopercularis", (220, 180, 140), 2.6),
    ("parsorbitalis", (20, 100, 50), 2.7),
    ("parstriangularis", (220, 60, 20), 2.5),
    ("pericalcarine", (120, 100, 60), 1.6),
    ("postcentral", (220, 20, 20), 2.1),
    ("posteriorcingulate", (220, 180, 220), 2.6),
    ("precentral", (60, 20, 220), 2.6),
    ("precuneus", (160, 140, 180), 2.4),
    ("rostralanteriorcingulate", (80, 20, 140), 2.9),
    ("rostralmiddlefrontal", (75, 50, 125), 2.4),
    ("superiorfrontal", (20, 220, 160), 2.8),
    ("superiorparietal", (20, 180, 140), 2.3),
    ("superiortemporal", (140, 220, 220), 2.8),
    ("supramarginal", (80, 160, 20), 2.6),
    ("frontalpole", (100, 0, 100), 2.8),
    ("temporalpole", (70, 20, 170), 3.6),
    ("transversetemporal", (150, 150, 200), 2.3),
    ("insula", (255, 192, 32), 3.0),
)
THICKNESS_AGE_LOSS_PER_DECADE = 0.02
#: Relative cortical thinning of a patient of severity 1, both hemispheres.
DIAGNOSIS_THINNING = {"entorhinal": 0.12, "parahippocampal": 0.10, "inferiortemporal": 0.08}
THICKNESS_NOISE_SD_MM = 0.05


@dataclass(frozen=True)
class Cohort:
    """Where a synthetic cohort's files are, and the effects planted in it.

    ``cat12_dir`` holds the ``sub-*`` folders (``root`` itself in the plain
    layout, ``root/derivatives/CAT12.9`` in the BIDS layout).
    """

    root: Path
    layout: str
    cat12_dir: Path
    subjects: tuple
    participants_tsv: Path
    atlas_image: Path
    atlas_table: Path
    ground_truth_json: Path
    ground_truth: dict

    def anat_dir(self, subject):
        """The folder that holds ``subject``'s ``mri``, ``label`` and ``report``."""
        folder = self.cat12_dir / subject
        return folder / "anat" if self.layout == "bids" else folder

    def gm_map(self, subject):
        """The subject's modulated GM map, ``mri/mwp1<subject>_T1w.nii``."""
        return self.anat_dir(subject) / "mri" / f"mwp1{subject}_T1w.nii"

    def roi_xml(self, subject):
        """The subject's volume ROI measures, ``label/catROI_<subject>_T1w.xml``."""
        return self.anat_dir(subject) / "label" / f"catROI_{subject}_T1w.xml"

    def surface_roi_xml(self, subject):
        """The subject's thickness per region, ``label/catROIs_<subject>_T1w.xml``."""
        return self.anat_dir(subject) / "label" / f"catROIs_{subject}_T1w.xml"

    def report_xml(self, subject):
        """The subject's report (TIV, volumes, IQR), ``report/cat_<subject>_T1w.xml``."""
        return self.anat_dir(subject) / "report" / f"cat_{subject}_T1w.xml"

    @property
    def gm_maps(self):
        """All subjects' ``mwp1`` maps, in subject order."""
        return [self.gm_map(subject) for subject in self.subjects]


def make_cat12_cohort(out_dir, n_subjects=24, seed=0, n_sites=2, noise_sd=NOISE_SD,
                      layout="plain"):
    """Write a SYNTHETIC CAT12-like cohort with planted age and diagnosis effects.

    Parameters
    ----------
    out_dir : str or Path
        Folder to write into (created if missing; files of the same names are replaced).
    n_subjects : int
        Number of subjects, half ``AD`` and half ``CN`` (one more ``AD`` if odd).
    seed : int
        Seed of everything random: the same seed writes byte-identical files.
    n_sites : int
        Number of acquisition sites, each with its own intensity scale and offset.
    noise_sd : float
        Standard deviation of the multiplicative smooth noise.
    layout : {"plain", "bids"}
        ``plain``: ``<out>/sub-XX/{mri,label,report}``, as CAT12 writes next to
        the input images; ``bids``: ``<out>/derivatives/CAT12.9/sub-XX/anat/...``.

    Returns a :class:`Cohort`. Generating the 24 default subjects takes seconds
    (the template is resampled once per process).

    >>> import tempfile
    >>> cohort = make_cat12_cohort(tempfile.mkdtemp(), n_subjects=2)
    >>> cohort.subjects
    ('sub-01', 'sub-02')
    >>> cohort.ground_truth["subjects"]["sub-01"]["diagnosis"] in ("AD", "CN")
    True
    >>> import shutil; shutil.rmtree(cohort.root)
    """
    _check_options(n_subjects, n_sites, noise_sd, layout)
    root = Path(out_dir)
    rng = np.random.default_rng(seed)
    sites = _draw_sites(rng, n_sites)
    participants = _draw_participants(rng, n_subjects, n_sites)
    cohort = Cohort(
        root=root, layout=layout,
        cat12_dir=root / BIDS_PIPELINE_DIR if layout == "bids" else root,
        subjects=tuple(p["participant_id"] for p in participants),
        participants_tsv=root / "participants.tsv",
        atlas_image=root / "atlas" / f"atlas-{ATLAS_NAME}_dseg.nii.gz",
        atlas_table=root / "atlas" / f"atlas-{ATLAS_NAME}_dseg.tsv",
        ground_truth_json=root / "ground_truth.json",
        ground_truth=_ground_truth(seed, noise_sd, sites, participants),
    )
    _write_dataset_files(cohort)
    noise_seeds = np.random.SeedSequence(seed).spawn(n_subjects)
    thickness_noise = rng.normal(0.0, THICKNESS_NOISE_SD_MM, (n_subjects, 2 * len(DK40_REGIONS)))
    for participant, noise_seed, noise in zip(participants, noise_seeds, thickness_noise):
        gm = synthesize_gm_map(participant, sites[participant["site"]], noise_sd,
                               np.random.default_rng(noise_seed))
        _write_subject(cohort, participant, gm, noise)
    return cohort


@functools.lru_cache(maxsize=1)
def load_synthetic_atlas():
    """The synthetic atlas's label image on the CAT12 grid (read-only, cached)."""
    labels = make_synthetic_atlas(load_gm_template(), CAT12_AFFINE)
    labels.setflags(write=False)
    return labels


def synthesize_gm_map(participant, site, noise_sd, noise_rng):
    """Return one subject's float32 ``mwp1``-like map (the model in the module docstring).

    ``participant`` holds ``age``, ``tiv`` and ``severity``; ``site`` its
    ``scale`` and ``offset``; ``noise_rng`` draws the white noise.
    """
    from scipy import ndimage

    template, labels = load_gm_template(), load_synthetic_atlas()
    age_rate = _region_lookup(GLOBAL_AGE_LOSS_PER_DECADE, REGIONAL_AGE_LOSS_PER_DECADE)[labels]
    atrophy = _region_lookup(0.0, DIAGNOSIS_ATROPHY)[labels]
    decades = (participant["age"] - AGE_REFERENCE) / 10
    factor = (site["scale"] * participant["tiv"] / TIV_REFERENCE_CM3
              * (1 - age_rate * decades) * (1 - atrophy * participant["severity"])
              + site["offset"])
    white = noise_rng.standard_normal(CAT12_SHAPE, dtype=np.float32)
    smooth = ndimage.gaussian_filter(white, sigma=NOISE_FWHM_MM / (2.3548 * 1.5))
    noise = smooth / smooth.std()
    gm = GM_SCALE * template * factor * (1 + noise_sd * noise)
    return np.clip(gm, 0.0, None).astype(np.float32)


def _check_options(n_subjects, n_sites, noise_sd, layout):
    if layout not in LAYOUTS:
        raise AnatCLError(f"layout={layout!r} is not known; use one of {LAYOUTS}")
    if n_subjects < 2:
        raise AnatCLError(f"n_subjects={n_subjects}: a cohort needs at least 2 subjects "
                          "(one patient and one control)")
    if not 1 <= n_sites <= n_subjects:
        raise AnatCLError(f"n_sites={n_sites}: pass between 1 and n_subjects={n_subjects} sites")
    if not 0 <= noise_sd < 0.2:
        raise AnatCLError(f"noise_sd={noise_sd}: pass a value in [0, 0.2) so grey matter "
                          "stays positive")


def _draw_sites(rng, n_sites):
    scales = rng.uniform(*SITE_SCALE_RANGE, n_sites)
    offsets = rng.uniform(*SITE_OFFSET_RANGE, n_sites)
    return {f"site{k + 1}": {"scale": float(scale), "offset": float(offset)}
            for k, (scale, offset) in enumerate(zip(scales, offsets))}


def _draw_participants(rng, n_subjects, n_sites):
    """Draw every subject's covariates, in a fixed order (so a seed fixes them all)."""
    diagnoses = rng.permutation(np.resize(["AD", "CN"], n_subjects))
    sites = rng.permutation(np.arange(n_subjects) % n_sites) + 1
    sexes = rng.choice(["F", "M"], n_subjects)
    ages = np.round(rng.uniform(*AGE_RANGE, n_subjects), 1)
    tiv_z = rng.standard_normal(n_subjects)
    severities = rng.uniform(*SEVERITY_RANGE, n_subjects) * (diagnoses == "AD")
    mmse_z = rng.standard_normal(n_subjects)
    noise_ratings = rng.uniform(1.5, 3.0, n_subjects)
    width = max(2, len(str(n_subjects)))
    participants = []
    for i in range(n_subjects):
        tiv_mean, tiv_sd = TIV_BY_SEX[sexes[i]]
        mmse = (MMSE_CONTROL - MMSE_DROP * severities[i]
                + MMSE_NOISE_SD[diagnoses[i]] * mmse_z[i])
        participants.append({
            "participant_id": f"sub-{i + 1:0{width}d}",
            "age": float(ages[i]),
            "sex": str(sexes[i]),
            "site": f"site{sites[i]}",
            "diagnosis": str(diagnoses[i]),
            "mmse": int(np.clip(np.round(mmse), 0, 30)),
            "tiv": float(tiv_mean + tiv_sd * tiv_z[i]),
            "severity": float(severities[i]),
            "noise_rating": float(noise_ratings[i]),
        })
    return participants


def _region_lookup(default, by_name):
    """Array indexed by label value: ``by_name``'s value for named regions, else ``default``."""
    table = region_table()
    lookup = np.full(len(table) + 1, default, dtype=np.float32)
    for index, name in table:
        lookup[index] = by_name.get(name, default)
    lookup[0] = default
    return lookup


def _ground_truth(seed, noise_sd, sites, participants):
    return {
        "description": "SYNTHETIC cohort made by anatcl_nipype.data.make_cat12_cohort; "
                       "it only mimics CAT12's output layout. Not real data.",
        "model": "mwp1 = gm_scale * T * (site.scale * tiv / tiv_reference_cm3 * "
                 "(1 - age_rate * (age - age_reference) / 10) * (1 - atrophy * severity) "
                 "+ site.offset) * (1 + noise)",
        "seed": seed,
        "package_version": __version__,
        "template": "nilearn load_mni152_gm_template(resolution=1), linear onto the "
                    "CAT12 1.5 mm grid",
        "gm_scale": GM_SCALE,
        "tiv_reference_cm3": TIV_REFERENCE_CM3,
        "age_reference": AGE_REFERENCE,
        "age_loss_per_decade": {"global": GLOBAL_AGE_LOSS_PER_DECADE,
                                "regions": REGIONAL_AGE_LOSS_PER_DECADE},
        "diagnosis_atrophy": DIAGNOSIS_ATROPHY,
        "severity_range": list(SEVERITY_RANGE),
        "noise": {"sd": noise_sd, "fwhm_mm": NOISE_FWHM_MM, "kind": "multiplicative"},
        "mmse": {"control": MMSE_CONTROL, "drop_per_severity": MMSE_DROP,
                 "noise_sd": MMSE_NOISE_SD},
        "thickness": {"atlas": SURFACE_ATLAS_NAME,
                      "age_loss_per_decade": THICKNESS_AGE_LOSS_PER_DECADE,
                      "diagnosis_thinning": DIAGNOSIS_THINNING,
                      "noise_sd_mm": THICKNESS_NOISE_SD_MM},
        "sites": sites,
        "subjects": {p["participant_id"]: {k: v for k, v in p.items() if k != "participant_id"}
                     for p in participants},
    }


def _write_dataset_files(cohort):
    """Write participants.tsv/.json, ground_truth.json, the atlas and BIDS descriptions."""
    cohort.atlas_image.parent.mkdir(parents=True, exist_ok=True)
    cohort.cat12_dir.mkdir(parents=True, exist_ok=True)
    _write_participants(cohort)
    write_json_atomic(cohort.ground_truth_json, cohort.ground_truth)
    _write_atlas(cohort.atlas_image, cohort.atlas_table)
    if cohort.layout == "bids":
        write_json_atomic(cohort.root / "dataset_description.json", {
            "Name": "Synthetic CAT12-like cohort (SYNTHETIC, not real data)",
            "BIDSVersion": "1.9.0", "DatasetType": "raw"})
        write_json_atomic(cohort.cat12_dir / "dataset_description.json", {
            "Name": "CAT12.9-like derivatives (SYNTHETIC, not real data)",
            "BIDSVersion": "1.9.0", "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "anatcl_nipype.data.make_cat12_cohort",
                             "Version": __version__, "Description": SYNTHETIC_NOTE}]})


def _write_participants(cohort):
    columns = ("participant_id", "age", "sex", "site", "diagnosis", "mmse")
    rows = ["\t".join(columns)]
    for subject in cohort.subjects:
        values = {"participant_id": subject, **cohort.ground_truth["subjects"][subject]}
        rows.append("\t".join(str(values[column]) for column in columns))
    with atomic_write(cohort.participants_tsv) as tmp:
        tmp.write_text("\n".join(rows) + "\n")
    write_json_atomic(cohort.root / "participants.json", {
        "age": {"Description": "age at scan (SYNTHETIC)", "Units": "year"},
        "sex": {"Description": "sex (SYNTHETIC)", "Levels": {"F": "female", "M": "male"}},
        "site": {"Description": "acquisition site; each has its own intensity scale "
                                "and offset (SYNTHETIC)"},
        "diagnosis": {"Description": "diagnosis (SYNTHETIC)",
                      "Levels": {"AD": "patient, Alzheimer's-like atrophy planted",
                                 "CN": "cognitively normal control"}},
        "mmse": {"Description": "MMSE-like clinical score, 0-30, lower with more "
                                "planted atrophy (SYNTHETIC)"},
    })


def _write_atlas(image_path, table_path):
    """Write the atlas image (``.nii.gz``, no time stamp) and its index/name table."""
    image = _nifti_image(load_synthetic_atlas().astype(np.int16),
                         b"SYNTHETIC box atlas (anatcl_nipype.data)")
    with atomic_write(image_path) as tmp:
        tmp.write_bytes(gzip.compress(image.to_bytes(), mtime=0))
    rows = ["index\tname"] + [f"{index}\t{name}" for index, name in region_table()]
    with atomic_write(table_path) as tmp:
        tmp.write_text("\n".join(rows) + "\n")


def _write_subject(cohort, participant, gm, thickness_noise):
    subject = participant["participant_id"]
    for folder in ("mri", "label", "report"):
        (cohort.anat_dir(subject) / folder).mkdir(parents=True, exist_ok=True)
    image = _nifti_image(gm, b"SYNTHETIC CAT12-like mwp1 (anatcl_nipype.data)")
    with atomic_write(cohort.gm_map(subject)) as tmp:
        tmp.write_bytes(image.to_bytes())
    write_cat12_xml(cohort.roi_xml(subject), _volume_roi_struct(gm, participant))
    write_cat12_xml(cohort.surface_roi_xml(subject),
                    _surface_roi_struct(participant, thickness_noise))
    write_cat12_xml(cohort.report_xml(subject), _report_struct(gm, participant))


def _nifti_image(volume, description):
    import nibabel as nib

    image = nib.Nifti1Image(volume, CAT12_AFFINE)
    image.set_qform(CAT12_AFFINE, code=2)
    image.set_sform(CAT12_AFFINE, code=2)
    image.header.set_xyzt_units("mm")
    image.header["descrip"] = description
    return image


def _volume_roi_struct(gm, participant):
    """``catROI`` struct: GM/WM/CSF volumes (cm3) per region of the synthetic atlas."""
    labels = load_synthetic_atlas()
    table = region_table()
    sums = np.bincount(labels.ravel(), weights=gm.ravel().astype(np.float64),
                       minlength=len(table) + 1)
    counts = np.bincount(labels.ravel(), minlength=len(table) + 1)
    vgm = sums[1:] * VOXEL_CM3
    region_cm3 = counts[1:] * VOXEL_CM3 * participant["tiv"] / TIV_REFERENCE_CM3
    vwm = 0.25 * region_cm3
    vcsf = np.clip(region_cm3 - vgm - vwm, 0.0, None)
    return {ATLAS_NAME: {
        "ids": np.array([index for index, _ in table], dtype=np.float64),
        "names": [name for _, name in table],
        "comments": [SYNTHETIC_NOTE],
        "version": CAT12_VERSION,
        "data": {"Vcsf": vcsf, "Vgm": vgm, "Vwm": vwm},
    }}


def _surface_roi_struct(participant, noise):
    """``catROIs`` struct: mean thickness (mm) per Desikan-Killiany region, l/r interleaved."""
    decades = (participant["age"] - AGE_REFERENCE) / 10
    names, ids, thickness = [], [], []
    for name, (red, green, blue), base in DK40_REGIONS:
        for hemisphere in "lr":
            names.append(hemisphere + name)
            ids.append(red + 256 * green + 65536 * blue)
            if base is None:
                thickness.append(math.nan)
                continue
            thinning = DIAGNOSIS_THINNING.get(name, 0.0) * participant["severity"]
            thickness.append(base * (1 - THICKNESS_AGE_LOSS_PER_DECADE * decades)
                             * (1 - thinning))
    return {SURFACE_ATLAS_NAME: {
        "ids": np.array(ids, dtype=np.float64),
        "names": names,
        "comments": [SYNTHETIC_NOTE],
        "version": CAT12_VERSION,
        "data": {"thickness": (np.array(thickness) + noise)[np.newaxis, :]},
    }}


def _report_struct(gm, participant):
    """``cat`` report struct: TIV, absolute and relative tissue volumes, quality ratings."""
    tiv = participant["tiv"]
    decades = (participant["age"] - AGE_REFERENCE) / 10
    gm_cm3 = float(gm.sum(dtype=np.float64)) * VOXEL_CM3
    wm_cm3 = 0.33 * tiv * (1 - 0.01 * decades)
    wmh_cm3 = 0.05 * decades ** 2
    csf_cm3 = tiv - gm_cm3 - wm_cm3 - wmh_cm3
    volumes = np.array([[csf_cm3, gm_cm3, wm_cm3, wmh_cm3, 0.0]])
    resolution_rating = 1.5
    name = f"{participant['participant_id']}_T1w"
    return {
        "filedata": {"file": name, "fname": f"{name}.nii"},
        "qualityratings": {
            "res_RMS": resolution_rating,
            "NCR": participant["noise_rating"],
            "IQR": (resolution_rating + participant["noise_rating"]) / 2,
        },
        "software": {"version_cat": CAT12_VERSION, "comments": SYNTHETIC_NOTE},
        "subjectmeasures": {
            "vol_TIV": tiv,
            "vol_abs_CGW": volumes,
            "vol_rel_CGW": volumes / tiv,
        },
    }

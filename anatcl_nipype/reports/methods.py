"""A methods section that says what ran, from what the output folder holds.

One paragraph per step that actually ran, each written once: encoding (with the weights
described as they were: released descriptor and fold, a user checkpoint and its sha256, or
seeded random weights with no learned anatomy), CAT12 regional measures, CAT12 quality
measures, the report's own checks, each fitted probe, each applied probe. Then references,
each with its BibTeX entry. The same text is written to ``methods.md``.

>>> from pathlib import Path
>>> weights_sentence({"random": True, "run_id": "random-seed7", "sha256": "ab" * 32})[:44]
'seeded random weights (run id random-seed7, '
"""

import re
from collections import Counter

from anatcl_nipype.prediction.summary_text import mean_sd_text
from anatcl_nipype.reports.collect import read_json, scans_of
from anatcl_nipype.reports.studies import probe_cards

#: Reference of each citable step: (text in the list, BibTeX key in data/references.bib).
REFERENCES = {
    'anatcl': (
        "Barbano CA, Brunello M, Dufumier B, Grangetto M. Anatomical foundation models for "
        "brain MRIs. Pattern Recognition Letters 199:178-184, 2026. "
        "doi:10.1016/j.patrec.2025.11.028",
        "barbano2026anatcl"),
    'nipype': (
        "Gorgolewski K, et al. Nipype: a flexible, lightweight and extensible neuroimaging data "
        "processing framework in Python. Frontiers in Neuroinformatics 5:13, 2011. "
        "doi:10.3389/fninf.2011.00013",
        "gorgolewski2011nipype"),
    'nipreps': (
        "Esteban O, et al. fMRIPrep: a robust preprocessing pipeline for functional MRI. Nature "
        "Methods 16:111-116, 2019. doi:10.1038/s41592-018-0235-4 (the NiPreps framework of "
        "niworkflows and nireports, which assemble this report).",
        "esteban2019fmriprep"),
    'sklearn': (
        "Pedregosa F, et al. Scikit-learn: machine learning in Python. Journal of Machine "
        "Learning Research 12:2825-2830, 2011.",
        "pedregosa2011sklearn"),
    'cat12': (
        "Gaser C, Dahnke R, Thompson PM, Kurth F, Luders E, the Alzheimer's Disease "
        "Neuroimaging Initiative. CAT: a computational anatomy toolbox for the analysis of "
        "structural MRI data. GigaScience 13:giae049, 2024. doi:10.1093/gigascience/giae049",
        "gaser2024cat"),
    'skops': (
        "skops: secure persistence of scikit-learn models. https://skops.readthedocs.io",
        "skops"),
    'nilearn': (
        "Abraham A, et al. Machine learning for neuroimaging with scikit-learn. Frontiers in "
        "Neuroinformatics 8:14, 2014. doi:10.3389/fninf.2014.00014 (nilearn, which ships the "
        "MNI152 grey-matter prior the report checks maps against and draws relevance maps).",
        "abraham2014nilearn"),
    'combat': (
        "Fortin JP, et al. Harmonization of cortical thickness measurements across scanners "
        "and sites. NeuroImage 167:104-120, 2018. doi:10.1016/j.neuroimage.2017.11.024 "
        "(ComBat, as implemented in neuroCombat).",
        "fortin2018combat"),
}

_TASK_PHRASES = {"classification": "classify participants by {}", "regression": "predict {}",
                 "brain_age": "predict {} (brain age)"}


def weights_sentence(weights):
    """How the embeddings' weights are described, from a sidecar's ``weights`` dict."""
    sha = weights.get("sha256") or "unknown"
    if weights.get("random"):
        return (f"seeded random weights (run id {weights.get('run_id', 'unknown')}, sha256 "
                f"{sha}). These weights were never trained: the embeddings carry no learned "
                "anatomy, and any result computed from them tests the pipeline only")
    if weights.get("descriptor") is not None and weights.get("fold") is not None:
        return (f"the released AnatCL weights of the {weights['descriptor']} descriptor, fold "
                f"{weights['fold']} (sha256 {sha}), a 3D ResNet-18 pretrained on about 4,000 "
                "healthy-control scans of OpenBHB with a contrastive loss whose positives are "
                "weighted by regional anatomical similarity (cortical thickness, grey-matter "
                "volume and surface area of the Desikan-Killiany regions)")
    name = str(weights.get("path") or "a checkpoint").rsplit("/", 1)[-1]
    return (f"a user-supplied AnatCL checkpoint, {name} (sha256 {sha}), whose training "
            "this report cannot describe")


def encoding_paragraph(participants):
    """The embedding step, or None when no participant was encoded."""
    sidecars = [p.sidecar for p in participants if p.embedding is not None]
    if not sidecars:
        return None
    kinds = Counter(_weights_key(s.get("weights", {})) for s in sidecars)
    weights = next(s.get("weights", {}) for s in sidecars
                   if _weights_key(s.get("weights", {})) == kinds.most_common(1)[0][0])
    first = sidecars[0]
    software = first.get("software", {})
    preprocessing = first.get("preprocessing", {})
    scans = scans_of(p.label for p in participants if p.embedding is not None)
    text = (f"The modulated, normalised grey-matter map of each of the {scans}, "
            "written by CAT12 on the 1.5 mm MNI grid (121x145x121 voxels), "
            f"was centre-cropped ({preprocessing.get('crop', 'to 121x128x121 voxels')}) and "
            "passed, with its intensities as CAT12 wrote them, through the AnatCL encoder "
            "[AnatCL] with " + weights_sentence(weights) + ". "
            "The 512-dimensional output of the network's global average pooling (the backbone "
            "representation, without the projection head) was kept as the participant's "
            "embedding, computed in "
            f"{first.get('precision', 'fp32')} on {first.get('device', 'an unknown device')} "
            f"by anatcl-nipype {software.get('anatcl_nipype', '')} (torch "
            f"{software.get('torch', 'unknown')}) within Nipype [Nipype].")
    if len(kinds) > 1:
        text += (f" Not every participant used the same weights ({len(kinds)} different "
                 "weights in this folder); the sidecars name each one.")
    return text


def _weights_key(weights):
    return weights.get("sha256") or repr(sorted(weights.items()))


def regional_paragraph(root):
    """The CAT12 regional-measures step, or None when no regional table was written."""
    tables = sorted(root.glob("sub-*/**/*_regions.tsv"))
    if not tables:
        return None
    sources = read_json(tables[0].with_suffix(".json")).get("Sources", [])
    names = {str(s.get("path", s) if isinstance(s, dict) else s).rsplit("/", 1)[-1]
             for s in sources}
    kinds = [text for prefix, text in (
        ("catROI_", "grey-matter, white-matter and CSF volumes per region of CAT12's volume "
                    "atlases (catROI_*.xml)"),
        ("catROIs_", "mean cortical thickness per region of its surface atlases "
                     "(catROIs_*.xml)")) if any(n.startswith(prefix) for n in names)]
    return (f"Region-wise measures estimated by CAT12 [CAT12] for {len(tables)} "
            f"participant(s) ({'; '.join(kinds) or 'CAT12 ROI files'}) were collected into "
            "one table per participant by anatcl-nipype.")


def cat12_quality_paragraph(participants):
    """The CAT12 quality read-out, or None when no CAT12 report was read."""
    read = [p.cat12 for p in participants if p.cat12]
    if not read:
        return None
    versions = sorted({c.get("cat_version") or "unknown version" for c in read})
    return (f"For {len(read)} participant(s), CAT12's total intracranial volume (TIV), "
            "tissue volumes and image quality rating (IQR) were read from its report files "
            f"(report/cat_*.xml; CAT12 {', '.join(versions)}) [CAT12].")


def qc_paragraph(n_checked):
    """The report's own automatic checks."""
    from anatcl_nipype.reports import qc

    if not n_checked:
        return None
    return (f"Each of the {n_checked} cropped grey-matter map(s) was compared with the MNI152 "
            "grey-matter prior shipped with nilearn [nilearn]: maps correlating below "
            f"{qc.MIN_PRIOR_CORRELATION} with it (both smoothed to about 8 mm) or overlapping "
            f"it with a Dice coefficient below {qc.MIN_PRIOR_DICE} were flagged as "
            "misregistered, as were maps with odd intensities and CAT12 image-quality grades worse than C (rating "
            f"below {qc.MIN_IQR_RATING:.0f} %). Embeddings whose distance to the cohort's "
            f"median embedding had a robust z-score above {qc.OUTLIER_Z} (median and MAD) "
            "were flagged as outliers. The report was assembled with nireports [NiPreps].")


def probe_paragraph(target):
    """One fitted probe (``group/target-<name>``), or None when none was fitted."""
    from anatcl_nipype.prediction.probes import DEFAULT_ALPHAS, DEFAULT_CS, DEFAULT_INNER_CV

    summary = target.summary or target.card or next(iter(probe_cards(target)), ({}, ""))[0]
    if not summary or not summary.get("cv_metrics"):
        return None
    task = target.task or "regression"
    validation = summary.get("validation", {})
    groups = validation.get("group_column")
    n = summary.get("n_train", "the")
    features = {"embeddings": "embedding", "both": "embedding and regional"}.get(
        summary.get("features"), summary.get("features") or "embedding")
    if task == "classification":
        grid = DEFAULT_CS
        model = (f"an L2-penalised logistic regression with balanced class weights, its "
                 f"inverse penalty C chosen among {len(grid)} values ({_g(min(grid))} to "
                 f"{_g(max(grid))}) by an inner "
                 + (f"{DEFAULT_INNER_CV}-fold GroupKFold" if groups else
                    f"stratified {DEFAULT_INNER_CV}-fold")
                 + " cross-validation on the log-loss")
        splitter = "stratified"
    else:
        grid = DEFAULT_ALPHAS
        model = (f"a ridge regression, its penalty chosen among {len(grid)} values "
                 f"({_g(min(grid))} to {_g(max(grid))}) by "
                 + (f"an inner {DEFAULT_INNER_CV}-fold GroupKFold" if groups else
                    "efficient leave-one-out") + " cross-validation")
        splitter = ""
    scheme = (f"{validation.get('cv', 5)}-fold GroupKFold cross-validation keeping every "
              f"value of '{groups}' in one fold" if groups else
              f"{splitter + ' ' if splitter else ''}{validation.get('cv', 5)}-fold "
              f"cross-validation")
    if groups:
        model += f", its inner splits grouped by '{groups}' too"
    repeats = validation.get("n_repeats", 1)
    text = (f"A linear probe on the frozen {features} features of {n} participant(s) was fitted "
            f"to {_TASK_PHRASES.get(task, 'predict {}').format(summary.get('target', target.name))}"
            " "
            f"[scikit-learn]: missing values imputed by the median and features standardised "
            f"(both fitted on training folds only), then {model}. It was evaluated by "
            f"{scheme}{f', repeated {repeats} times' if repeats and repeats > 1 else ''} "
            f"(seed {validation.get('seed', 0)}): "
            + ", ".join(f"{name} {mean_sd_text(v['mean'], v['sd'])}"
                        for name, v in summary["cv_metrics"].items()
                        if isinstance(v, dict) and "mean" in v) + " (mean ± sd over folds).")
    if task == "brain_age":
        text += (" The brain-age gap was corrected for the age bias with a linear fit of the "
                 f"predictions on age, estimated on {bias_fit_text(validation)} and applied "
                 "to the test fold; the metrics are those of the raw predictions.")
    permutation = summary.get("permutation_test")
    if isinstance(permutation, dict) and permutation.get("pvalue") is not None:
        text += (f" A permutation test with {permutation.get('n_permutations', 'several')} "
                 f"label shuffles gave p = {_g(permutation['pvalue'])} for the "
                 f"{permutation.get('metric', 'score')}.")
    else:
        text += " No permutation test was run."
    if target.card.get("model_sha256"):
        text += (f" The fitted probe was saved with skops [skops] (sha256 "
                 f"{target.card['model_sha256']}).")
    return text


def bias_fit_text(validation):
    """What the brain-age bias line was fitted on, from a card's ``validation``.

    >>> bias_fit_text({"bias_cv": 5, "bias_folds": [2, 5], "group_column": "participant_id"})
    "5-fold cross-validated predictions within each training fold (GroupKFold by \
'participant_id'; 2 folds where a training fold held fewer than 5 values of it)"
    >>> bias_fit_text({"bias_cv": None})[:54]
    'the in-sample predictions of each training fold (--bia'
    """
    bias_cv = validation.get("bias_cv", 5)
    if bias_cv is None:
        return ("the in-sample predictions of each training fold (--bias-cv none: too few "
                "participants to cross-validate within them), which under-corrects the bias")
    groups = validation.get("group_column")
    fewer = [str(n) for n in validation.get("bias_folds", [bias_cv]) if n != bias_cv]
    unit = "values of it" if groups else "participants"
    notes = ([f"GroupKFold by '{groups}'"] if groups else []) + (
        [f"{' or '.join(fewer)} folds where a training fold held fewer than {bias_cv} {unit}"]
        if fewer else [])
    return (f"{bias_cv}-fold cross-validated predictions within each training fold"
            + (f" ({'; '.join(notes)})" if notes else ""))


def harmonization_paragraph(target):
    """ComBat site harmonisation of a probe's features, or None when it did not run."""
    harmonization = next((card["harmonization"] for card, _ in probe_cards(target)
                          if card.get("harmonization")), None)
    if not harmonization:
        return None
    sites = harmonization.get("sites") or []
    covariates = harmonization.get("covariates") or []
    protected = (f"protecting the covariate(s) {', '.join(covariates)}" if covariates
                 else "with no protected covariate")
    text = (f"Before the probe for {target.name} was fitted, the features were harmonised "
            f"across the {len(sites)} site(s) of the column "
            f"'{harmonization.get('site_column', 'site')}' with ComBat [ComBat] (the "
            f"neuroCombat package; empirical Bayes location and scale adjustment), {protected}. "
            "ComBat was fitted inside each training fold only and applied to that fold's test "
            "participants, so no test participant informed the site effects.")
    if harmonization.get("unseen_sites"):
        text += (f" Participants of sites unseen in training were handled as "
                 f"'{harmonization['unseen_sites']}'.")
    return text


def ensemble_paragraph(target):
    """A fold ensemble (``fold-<k>/`` and ``desc-ensemble_*``), or None when none was fitted."""
    folds = sorted(path.name.split("-", 1)[1] for path in target.folder.glob("fold-*")
                   if path.is_dir())
    if not folds or not any(target.folder.glob("desc-ensemble_*")):
        return None
    return (f"For {target.name}, one probe was fitted on the embeddings of each of the "
            f"{len(folds)} released AnatCL encoder folds ({', '.join(folds)}), all "
            "cross-validated with the same splits; the fold ensemble's prediction is the mean "
            "of the per-fold probes' out-of-fold predictions, and its metrics are reported "
            "beside each fold's (desc-ensemble_metrics.tsv, desc-folds_metrics.tsv).")


def applied_paragraph(target, applied):
    """A saved probe applied to this folder's participants."""
    model, sha = applied.model, applied.model_sha256 or "unknown"
    name = str(model or "unnamed").rsplit("/", 1)[-1]
    return (f"A previously fitted probe for {target.name}, {name} (sha256 {sha}), was loaded "
            "with skops [skops] and applied, unchanged, to "
            f"{len(applied.rows)} participant(s); its predictions were not cross-validated here.")


def _g(value):
    """3 significant digits."""
    try:
        return f"{float(value):.3g}"
    except (TypeError, ValueError):
        return str(value)


def methods_paragraphs(folder):
    """The methods of ``folder`` (an :class:`~anatcl_nipype.reports.collect.OutputFolder`)."""
    paragraphs = [encoding_paragraph(folder.participants), regional_paragraph(folder.root),
                  cat12_quality_paragraph(folder.participants),
                  qc_paragraph(sum(1 for p in folder.participants
                                   if p.gm_map is not None and p.gm_map.is_file()))]
    for target in folder.targets:
        paragraphs += [harmonization_paragraph(target), probe_paragraph(target),
                       ensemble_paragraph(target)]
        paragraphs += [applied_paragraph(target, applied) for applied in target.applied]
    unique = []
    for paragraph in paragraphs:
        if paragraph and paragraph not in unique:
            unique.append(paragraph)
    return unique


def cited(paragraphs):
    """Keys of :data:`REFERENCES` cited (``[Name]``) in the paragraphs, in citation order."""
    tags = {"anatcl": "[AnatCL]", "nipype": "[Nipype]", "nipreps": "[NiPreps]",
            "sklearn": "[scikit-learn]", "cat12": "[CAT12]", "skops": "[skops]",
            "nilearn": "[nilearn]", "combat": "[ComBat]"}
    text = " ".join(paragraphs)
    return sorted((key for key, tag in tags.items() if tag in text),
                  key=lambda key: text.index(tags[key]))


def bibtex_entries():
    """``{BibTeX key: entry}`` of ``data/references.bib``.

    >>> bibtex_entries()["barbano2026anatcl"].splitlines()[-2].strip()
    'doi     = {10.1016/j.patrec.2025.11.028}'
    """
    from importlib import resources

    text = (resources.files("anatcl_nipype.reports") / "data" / "references.bib").read_text(
        encoding="utf-8")
    return {match.group(1): match.group(0)
            for match in re.finditer(r"^@\w+\{([^,]+),.*?^\}", text, re.S | re.M)}


def methods_markdown(folder):
    """The methods text with its references and BibTeX, as Markdown."""
    paragraphs = methods_paragraphs(folder)
    keys = cited(paragraphs)
    lines = ["# Methods", "", *(p + "\n" for p in paragraphs), "## References", ""]
    lines += [f"- {REFERENCES[key][0]}" for key in keys]
    entries = bibtex_entries()
    lines += ["", "## BibTeX", "", "```bibtex", *(entries[REFERENCES[key][1]] + "\n"
                                                for key in keys), "```", ""]
    return "\n".join(lines)

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

from collections import Counter

from anatcl_nipype.citations import bibtex_entries, cite, cited_keys, reference
from anatcl_nipype.options import INNER_CV
from anatcl_nipype.outputs import participant_files
from anatcl_nipype.prediction.methods_text import (
    applied_text,
    ensemble_text,
    harmonization_text,
    probe_text,
)
from anatcl_nipype.prediction.summary_text import mean_sd_text
from anatcl_nipype.regional.methods_text import regional_text
from anatcl_nipype.reports.collect import read_json, scans_of
from anatcl_nipype.reports.studies import probe_cards


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
            f"{cite('barbano2026anatcl')} with " + weights_sentence(weights) + ". "
            "The 512-dimensional output of the network's global average pooling (the backbone "
            "representation, without the projection head) was kept as the participant's "
            "embedding, computed in "
            f"{first.get('precision', 'fp32')} on {first.get('device', 'an unknown device')} "
            f"by anatcl-nipype {software.get('anatcl_nipype', '')} (torch "
            f"{software.get('torch', 'unknown')}) within Nipype {cite('gorgolewski2011nipype')}.")
    if len(kinds) > 1:
        text += (f" Not every participant used the same weights ({len(kinds)} different "
                 "weights in this folder); the sidecars name each one.")
    return text


def _weights_key(weights):
    return weights.get("sha256") or repr(sorted(weights.items()))


def regional_paragraph(root):
    """The regional-measures step, or None when no regional table was written: the
    sentences of the regional workflow's ``__desc__``
    (:func:`~anatcl_nipype.regional.methods_text.regional_text`) for the inputs the first
    table's sidecar names, then how many scans have a table."""
    tables = participant_files(root, "regional", ".tsv")
    if not tables:
        return None
    sidecar = read_json(tables[0].with_suffix(".json"))
    names = {str(s.get("path", s) if isinstance(s, dict) else s).rsplit("/", 1)[-1]
             for s in sidecar.get("Sources", [])}
    read = {kind: any(name.startswith(prefix) and name.endswith(".xml") for name in names)
            for kind, prefix in (("volume", "catROI_"), ("surface", "catROIs_"),
                                 ("report", "cat_"))}
    atlases = sorted({column["Atlas"] for column in sidecar.values()
                      if isinstance(column, dict) and column.get("Measure") == "mean_gm"
                      and column.get("Atlas")})
    text = regional_text(cat12_rois=any(read.values()) or not atlases, atlas=bool(atlases),
                         atlas_name=" and ".join(atlases) or None, sep=" ", **read)
    labels = ["_".join(part for part in table.name.split("_") if part.startswith(("sub-", "ses-")))
              for table in tables]
    return f"{text} Regional tables were written for {scans_of(labels)}."


def cat12_quality_paragraph(participants):
    """The CAT12 quality read-out, or None when no CAT12 report was read."""
    read = [p.cat12 for p in participants if p.cat12]
    if not read:
        return None
    versions = sorted({c.get("cat_version") or "unknown version" for c in read})
    return (f"For {len(read)} participant(s), CAT12's total intracranial volume (TIV), "
            "tissue volumes and image quality rating (IQR) were read from its report files "
            f"(report/cat_*.xml; CAT12 {', '.join(versions)}) {cite('gaser2024cat')}.")


def qc_paragraph(n_checked):
    """The report's own automatic checks."""
    from anatcl_nipype.reports import qc

    if not n_checked:
        return None
    return (f"Each of the {n_checked} cropped grey-matter map(s) was compared with the MNI152 "
            f"grey-matter prior shipped with nilearn {cite('abraham2014nilearn')}: maps "
            f"correlating below {qc.MIN_PRIOR_CORRELATION} with it (both smoothed to about "
            f"8 mm) or overlapping it with a Dice coefficient below {qc.MIN_PRIOR_DICE} were "
            "flagged as misregistered, as were maps with odd intensities and CAT12 "
            f"image-quality grades worse than C (rating below {qc.MIN_IQR_RATING:.0f} %). "
            "Embeddings whose distance to the cohort's "
            f"median embedding had a robust z-score above {qc.OUTLIER_Z} (median and MAD) "
            "were flagged as outliers. The report was assembled with nireports "
            f"{cite('esteban2019fmriprep')}.")


def probe_paragraph(target):
    """One fitted probe (``group/target-<name>``), or None when none was fitted."""
    summary = target.summary or target.card or next(iter(probe_cards(target)), ({}, ""))[0]
    if not summary or not summary.get("cv_metrics"):
        return None
    validation = summary.get("validation", {})
    permutation = summary.get("permutation_test")
    tested = isinstance(permutation, dict) and permutation.get("pvalue") is not None
    return probe_text(
        summary.get("target", target.name), target.task or "regression",
        summary.get("features") or "embeddings", cv=validation.get("cv", 5),
        n_repeats=validation.get("n_repeats") or 1,
        group_column=validation.get("group_column"), seed=validation.get("seed", 0),
        n_permutations=permutation.get("n_permutations", "several") if tested else 0,
        n_train=summary.get("n_train"),
        results=", ".join(f"{name} {mean_sd_text(v['mean'], v['sd'])}"
                          for name, v in summary["cv_metrics"].items()
                          if isinstance(v, dict) and "mean" in v),
        bias_cv=validation.get("bias_cv", INNER_CV), bias_folds=validation.get("bias_folds"),
        pvalue=_g(permutation["pvalue"]) if tested else None,
        metric=permutation.get("metric") if tested else None,
        model_sha256=target.card.get("model_sha256"))


def harmonization_paragraph(target):
    """ComBat site harmonisation of a probe's features, or None when it did not run."""
    harmonization = next((card["harmonization"] for card, _ in probe_cards(target)
                          if card.get("harmonization")), None)
    if not harmonization:
        return None
    return f"For {target.name}: " + harmonization_text(
        harmonization.get("site_column", "site"), harmonization.get("covariates") or [],
        n_sites=len(harmonization.get("sites") or []) or None,
        unseen_sites=harmonization.get("unseen_sites"))


def ensemble_paragraph(target):
    """A fold ensemble (``fold-<k>/`` and ``desc-ensemble_*``), or None when none was fitted."""
    folds = sorted(path.name.split("-", 1)[1] for path in target.folder.glob("fold-*")
                   if path.is_dir())
    if not folds or not any(target.folder.glob("desc-ensemble_*")):
        return None
    return f"For {target.name}: " + ensemble_text(folds)


def applied_paragraph(target, applied):
    """A saved probe applied to this folder's participants."""
    name = str(applied.model or "unnamed").rsplit("/", 1)[-1]
    return applied_text(target.name, name, model_sha256=applied.model_sha256 or "unknown",
                        n_participants=len(applied.rows))


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


def methods_markdown(folder):
    """The methods text with its references and BibTeX, as Markdown."""
    paragraphs = methods_paragraphs(folder)
    keys = cited_keys(" ".join(paragraphs))
    lines = ["# Methods", "", *(p + "\n" for p in paragraphs), "## References", ""]
    lines += [f"- [@{key}] {reference(key)}" for key in keys]
    entries = bibtex_entries()
    lines += ["", "## BibTeX", "", "```bibtex", *(entries[key] + "\n" for key in keys), "```",
              ""]
    return "\n".join(lines)

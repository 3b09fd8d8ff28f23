"""What the output folder's files are called and where they go: one table of names each for
the participant level (:data:`PARTICIPANT_FILES`) and the group level (:data:`GROUP_FILES`).

The sinks that write them (:mod:`~anatcl_nipype.workflows.derivatives`,
:mod:`~anatcl_nipype.workflows.group_derivatives`), the probe study that records them in the
card, and everything that reads them back (the command line, the demo, the report) take the
names from here. Import-light: the ground floor.

>>> f"{target_folder('MMSE score')}/{fold_folder(0)}/{GROUP_FILES['metrics']}"
'group/target-MMSEscore/fold-0/metrics.tsv'
>>> "sub-01_ses-1" + participant_file("regional", ".tsv")
'sub-01_ses-1_desc-cat12_regions.tsv'
"""

from pathlib import Path

from anatcl_nipype.bids import bids_label

#: The participant level's files, ``sub-<l>[/ses-<s>]/anat/sub-<l>[_ses-<s>]_desc-<desc>_
#: <suffix>.<ext>``, as (desc, suffix) by what they hold: the embedding (its desc names the
#: weights, :func:`~anatcl_nipype.bids.weights_desc`) and CAT12's regional measures.
PARTICIPANT_FILES = {
    "embedding": (None, "embedding"),
    "regional": ("cat12", "regions"),
}

#: Each group result's file name in ``group/target-<target>/`` (a fold ensemble's per-fold
#: results in its ``fold-<k>/``), by what it holds. A fit writes the feature tables, the
#: probe and its card, the cross-validation's metrics and out-of-fold predictions, its
#: figures (a stem: ``cv.svg``, ``cv.png``) and a summary; applying a saved probe, a fold
#: ensemble and relevance maps write beside them under ``desc-`` names, never over them.
GROUP_FILES = {
    "embeddings": "embeddings.tsv",
    "embeddings_json": "embeddings.json",
    "regional": "regional.tsv",
    "regional_json": "regional.json",
    "model": "probe.skops",
    "model_card": "probe.json",
    "metrics": "metrics.tsv",
    "predictions": "predictions.tsv",
    "figures": "cv",
    "summary": "summary.json",
    "applied_predictions": "desc-applied_predictions.tsv",
    "applied_predictions_json": "desc-applied_predictions.json",
    "ensemble_predictions": "desc-ensemble_predictions.tsv",
    "ensemble_metrics": "desc-ensemble_metrics.tsv",
    "folds_metrics": "desc-folds_metrics.tsv",
    "ensemble_summary": "desc-ensemble_summary.json",
    "relevance_map": "desc-relevance_statmap.nii.gz",
    "relevance_json": "desc-relevance_statmap.json",
    "relevance_regions": "desc-relevance_regions.tsv",
    "relevance_regions_json": "desc-relevance_regions.json",
}


def target_folder(target):
    """Where a target's group results go, relative to the derivatives folder.

    >>> target_folder("MMSE score")
    'group/target-MMSEscore'
    """
    return f"group/target-{bids_label(target)}"


def fold_folder(fold):
    """The folder of one encoder fold's results inside the target's (``"*"``: a glob).

    >>> fold_folder(3), fold_folder("*")
    ('fold-3', 'fold-*')
    """
    return f"fold-{fold}"


def participant_file(kind, extension, desc=None):
    """The end of a participant-level file's name, after ``sub-<l>[_ses-<s>]``; ``desc``
    for a kind whose desc varies (the embedding's; ``"*"``: a glob).

    >>> participant_file("embedding", ".npy", desc="anatclGlobalFold0")
    '_desc-anatclGlobalFold0_embedding.npy'
    >>> participant_file("embedding", ".npy", desc="*")
    '_desc-*_embedding.npy'
    """
    fixed, suffix = PARTICIPANT_FILES[kind]
    return f"_desc-{desc or fixed}_{suffix}{extension}"


def participant_files(output_dir, kind, extension, desc=None):
    """Every participant-level file of ``kind`` under ``output_dir``, sorted."""
    return sorted(Path(output_dir).glob(f"sub-*/**/*{participant_file(kind, extension, desc)}"))

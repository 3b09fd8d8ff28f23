"""Where the group level's results go and what their files are called: one table of names.

The sinks that write them (:mod:`~anatcl_nipype.workflows.group_derivatives`), the probe
study that records them in the card, and everything that reads them back (the command
line, the demo, the report) take the names from here. Import-light: the ground floor.

>>> f"{target_folder('MMSE score')}/{fold_folder(0)}/{GROUP_FILES['metrics']}"
'group/target-MMSEscore/fold-0/metrics.tsv'
"""

from anatcl_nipype.bids import bids_label

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

"""The one table of the group level's file names: the sinks write exactly these names."""

from anatcl_nipype.outputs import GROUP_FILES


def test_the_names_are_the_documented_ones():
    assert sorted(GROUP_FILES.values()) == [
        "cv", "desc-applied_predictions.json", "desc-applied_predictions.tsv",
        "desc-ensemble_metrics.tsv", "desc-ensemble_predictions.tsv",
        "desc-ensemble_summary.json", "desc-folds_metrics.tsv", "desc-relevance_regions.json",
        "desc-relevance_regions.tsv", "desc-relevance_statmap.json",
        "desc-relevance_statmap.nii.gz", "embeddings.json", "embeddings.tsv", "metrics.tsv",
        "predictions.tsv", "probe.json", "probe.skops", "regional.json", "regional.tsv",
        "summary.json"]


def test_every_name_has_a_sink_and_every_sink_a_name():
    from anatcl_nipype.workflows import group_derivatives as derivatives

    sinks = (*derivatives.FIT, *derivatives.APPLY, *derivatives.ENSEMBLE,
             *derivatives.RELEVANCE, *derivatives.RELEVANCE_REGIONS,
             *(sink for kind in derivatives.TABLES.values() for sink in kind))
    assert sorted({name for _, name, _ in sinks}) == sorted(GROUP_FILES.values())

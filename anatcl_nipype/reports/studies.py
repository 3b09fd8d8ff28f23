"""Report sections of the group level's optional studies: fold ensembles, site
harmonisation and relevance maps, each read from ``group/target-<t>/``.

Each function is the builder of a row of :data:`~anatcl_nipype.reports.sections.SECTIONS`:
it reads the targets of a :class:`~anatcl_nipype.reports.sections.ReportContext` and returns
an HTML fragment, or "" when no target has that study.

>>> from types import SimpleNamespace
>>> no_targets = SimpleNamespace(folder=SimpleNamespace(targets=[]))
>>> [build(no_targets) for build in (ensemble_fragment, harmonization_fragment,
...                                  relevance_fragment)]
['', '', '']
"""

from anatcl_nipype.outputs import GROUP_FILES, fold_folder
from anatcl_nipype.reports.collect import read_json, read_tsv
from anatcl_nipype.reports.fragments import (
    esc,
    figure_img,
    key_values,
    metrics_table,
    records_table,
    sig3,
)

#: Regions listed under the group relevance map.
TOP_REGIONS = 10


def ensemble_fragment(context):
    """Per target fitted with ``--fold all``: each encoder fold's CV metrics with their mean
    and sd, and the ensemble's metrics."""
    parts = []
    for target in context.folder.targets:
        folds = read_tsv(target.folder / GROUP_FILES["folds_metrics"])
        ensemble = read_tsv(target.folder / GROUP_FILES["ensemble_metrics"])
        if not folds:
            continue
        parts.append(
            f"<h3>{esc(target.name)}: fold ensemble</h3>"
            "<p>One probe per AnatCL encoder fold, cross-validated with the same splits: each "
            "fold's mean over the CV folds, then their mean and sd across encoder folds.</p>"
            + metrics_table(folds))
        if ensemble:
            parts.append("<p>The ensemble (mean of the per-fold probes' out-of-fold "
                         "predictions), per CV fold, then mean and sd.</p>"
                         + metrics_table(ensemble))
    return "".join(parts)


def harmonization_fragment(context):
    """Per harmonised probe: ComBat's columns and sites, and how well a site probe
    recognises the site before and after (cross-validated balanced accuracy)."""
    parts = []
    for target in context.folder.targets:
        for card, where in probe_cards(target):
            harmonization = card.get("harmonization")
            if not harmonization:
                continue
            separability = harmonization.get("site_separability") or {}
            parts.append(
                f"<h3>{esc(target.name)}{where}: site harmonisation</h3>"
                + key_values([
                    ("method", "ComBat (neuroCombat), fitted on the training folds only"),
                    ("site column", harmonization.get("site_column")),
                    ("sites", ", ".join(map(str, harmonization.get("sites", [])))),
                    ("protected covariates", ", ".join(harmonization.get("covariates", []))
                     or "none"),
                    ("unseen sites", harmonization.get("unseen_sites")),
                    ("site separability before", sig3(separability.get("before", "n/a"))),
                    ("site separability after", sig3(separability.get("after", "n/a"))),
                    ("chance", sig3(separability.get("chance", "n/a")))])
                + "<p>Site separability: balanced accuracy of a probe predicting the site "
                  "from the features (cross-validated); near chance after harmonisation means "
                  "the features carry little site.</p>")
    return "".join(parts)


def relevance_fragment(context):
    """Per target with relevance maps: the group map (glass brain) and the top regions."""
    parts = []
    for target in context.folder.targets:
        statmap = target.folder / GROUP_FILES["relevance_map"]
        if not statmap.is_file():
            continue
        sidecar = read_json(target.folder / GROUP_FILES["relevance_json"])
        caption = (f"Group relevance of the grey-matter map for the probe's score "
                   f"({esc(sidecar.get('method', 'integrated gradients'))}, "
                   f"{len(sidecar.get('participants', []))} participant(s)), oriented so that "
                   "positive values push the score away from the baseline's.")
        parts.append(f"<h3>{esc(target.name)}: relevance map</h3>"
                     + figure_img(glass_brain_uri(statmap), "group relevance map", caption))
        regions = read_tsv(target.folder / GROUP_FILES["relevance_regions"])[:TOP_REGIONS]
        if regions:
            parts.append(f"<p>The {len(regions)} regions of highest mean relevance.</p>"
                         + records_table(regions))
    return "".join(parts)


def glass_brain_uri(statmap):
    """A nilearn glass brain of ``statmap`` as a PNG data URI."""
    from nilearn import plotting

    from anatcl_nipype.reports.figures import _figure, png_data_uri

    figure = _figure(8, 3)
    # no colorbar: nilearn's colorbar needs a pyplot figure, this one is pyplot-free
    plotting.plot_glass_brain(str(statmap), figure=figure, plot_abs=False, colorbar=False,
                              display_mode="ortho")
    return png_data_uri(figure)  # not pyplot's: nothing to close


def probe_cards(target):
    """The probe cards of a target: its own, else each encoder fold's."""
    if target.card:
        return [(target.card, "")]
    cards = target.folder.glob(f"{fold_folder('*')}/{GROUP_FILES['model_card']}")
    return [(read_json(path), f" (encoder {path.parent.name})") for path in sorted(cards)]

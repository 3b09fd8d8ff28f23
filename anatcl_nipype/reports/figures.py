"""The report's figures: nilearn for brain images, matplotlib for charts.

Brain images are PNG (pixels), charts SVG (text stays text: ``svg.fonttype: none``);
both are returned as strings ready to inline, so the page needs no other file. Everything
draws on its own :class:`~matplotlib.figure.Figure` with the Agg canvas (no pyplot state).
"""

import base64
import io

import numpy as np

#: Coordinates (mm, MNI) of the three planes shown for every grey-matter map.
CUT_COORDS = (-30, -18, 12)
PRIOR_CONTOUR_LEVEL = 0.3
#: Size (inches) and resolution of a participant's panels: about 380x130 px, enough to
#: see a misplaced brain against the contour, and cheap to draw for every participant.
PANEL_SIZE, PANEL_DPI = (6.0, 2.1), 64
_STYLE = {"svg.fonttype": "none", "svg.hashsalt": "anatcl", "font.size": 9}


def _figure(width, height):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


def png_data_uri(figure, dpi=100):
    """``data:image/png;base64,...`` of a drawn figure (fast zlib level: a few % larger)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, pil_kwargs={"compress_level": 1})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def svg_text(figure):
    """The figure as inline SVG markup (no XML prologue)."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context(_STYLE):
        figure.savefig(buffer, format="svg")
    text = buffer.getvalue()
    return text[text.find("<svg"):]


def cropped_image(volume, step=1):
    """A cropped 121x128x121 array as a NIfTI image on its own place of the CAT12 grid;
    with ``step`` > 1, every ``step``-th voxel (a coarser grid, same place).

    >>> cropped_image(np.zeros((121, 128, 121)), step=2).shape
    (61, 64, 61)
    """
    import nibabel as nib

    from anatcl_nipype.encoder.volumes import CAT12_AFFINE, CROP_OFFSET

    affine = CAT12_AFFINE.copy()
    affine[:3, 3] += CAT12_AFFINE[:3, 1] * CROP_OFFSET
    affine[:3, :3] *= step
    volume = np.asarray(volume)[::step, ::step, ::step]
    return nib.Nifti1Image(np.asarray(volume, np.float32), affine)


class GreyMatterPanels:
    """Draws cropped GM maps in three planes with the MNI GM prior's contour (red).

    One nilearn display serves every map: its axes and the prior's contour are made once,
    and each map replaces the previous one as an overlay (the axes are the costly part of a
    nilearn figure, and every cropped map lies on the same grid). Maps are drawn at 3 mm
    (every other voxel): at the panels' size (about 2 px per 3 mm) that shows as much and
    halves the cost. :meth:`draw` returns a PNG data URI.

    >>> volume = np.zeros((121, 128, 121), np.float32); volume[40:80, 40:90, 40:80] = 0.5
    >>> panels = GreyMatterPanels(volume)
    >>> [panels.draw(volume)[:22], panels.draw(volume / 2)[:22]]
    ['data:image/png;base64,', 'data:image/png;base64,']
    """

    def __init__(self, prior):
        self._prior = cropped_image(prior)
        self._display = None

    def draw(self, volume):
        from nilearn import plotting

        image = cropped_image(volume, step=2)
        if self._display is None:
            self._display = plotting.plot_anat(
                image, cut_coords=CUT_COORDS, display_mode="ortho", figure=_figure(*PANEL_SIZE),
                colorbar=False, vmin=0, vmax=1, dim=0, draw_cross=False, black_bg=True)
            self._display.add_contours(self._prior, levels=[PRIOR_CONTOUR_LEVEL], colors="r",
                                       linewidths=0.7)
        else:
            for cut in self._display.axes.values():
                for previous in list(cut.ax.images):
                    previous.remove()
            self._display.add_overlay(image, cmap="gray", vmin=0, vmax=1)
        return png_data_uri(self._display.frame_axes.figure, dpi=PANEL_DPI)


def pca_overview(matrix, groupings):
    """First two principal components of the embeddings, one panel per grouping; SVG.

    ``groupings`` is ``{column: [value per row]}`` (e.g. diagnosis, site, sex); with none,
    one panel of all participants.
    """
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2).fit(matrix)
    scores = pca.transform(matrix)
    groupings = groupings or {"all": ["participant"] * len(matrix)}
    figure = _figure(3.3 * len(groupings), 3.0)
    axes = np.atleast_1d(figure.subplots(1, len(groupings)))
    explained = pca.explained_variance_ratio_
    for ax, (column, values) in zip(axes, groupings.items()):
        for value in sorted(set(values)):
            keep = np.array([v == value for v in values])
            ax.scatter(scores[keep, 0], scores[keep, 1], s=16, label=value)
        ax.set(xlabel=f"PC1 ({explained[0]:.0%})", ylabel=f"PC2 ({explained[1]:.0%})",
               title=f"by {column}")
        ax.legend(fontsize=7, loc="best")
    figure.set_layout_engine("constrained")
    return svg_text(figure)


def brain_age_gap(age, raw_gap, corrected_gap):
    """Brain-age gap against age, raw (predicted - age) and bias-corrected; SVG."""
    figure = _figure(6.4, 2.8)
    for ax, gap, title in zip(figure.subplots(1, 2, sharey=True), (raw_gap, corrected_gap),
                              ("raw: predicted - age", "corrected (fitted on training folds)")):
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.scatter(age, gap, s=14)
        finite = np.isfinite(gap) & np.isfinite(age)
        if finite.sum() > 2:
            slope, intercept = np.polyfit(age[finite], gap[finite], 1)
            grid = np.array([age[finite].min(), age[finite].max()])
            r = np.corrcoef(age[finite], gap[finite])[0, 1]
            ax.plot(grid, slope * grid + intercept, color="C3", label=f"r = {r:.2f}")
            ax.legend(loc="upper right")
        ax.set(xlabel="age (years)", title=title)
    figure.axes[0].set_ylabel("brain-age gap (years)")
    figure.set_layout_engine("constrained")
    return svg_text(figure)

"""The report's figures, drawn with matplotlib.

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


def _world_ordered(volume, step):
    """A cropped 121x128x121 array, every ``step``-th voxel, with its axes flipped so that
    x, y and z (mm, MNI) increase with the index; and ``(first centre, spacing)`` per axis.

    >>> ordered, axes = _world_ordered(np.zeros((121, 128, 121)), 2)
    >>> ordered.shape, axes[0], axes[1]
    ((61, 64, 61), (-90.0, 3.0), (-114.0, 3.0))
    """
    from anatcl_nipype.encoder.volumes import CAT12_AFFINE, CROP_OFFSET

    origin = CAT12_AFFINE[:3, 3] + CAT12_AFFINE[:3, 1] * CROP_OFFSET
    volume = np.asarray(volume, np.float32)[::step, ::step, ::step]
    axes = []
    for axis in range(3):
        first, spacing = float(origin[axis]), float(CAT12_AFFINE[axis, axis]) * step
        if spacing < 0:
            volume = np.flip(volume, axis)
            first, spacing = first + spacing * (volume.shape[axis] - 1), -spacing
        axes.append((first, spacing))
    return volume, axes


class GreyMatterPanels:
    """Draws cropped GM maps in three planes with the MNI GM prior's contour (red).

    Sagittal, coronal and axial planes through :data:`CUT_COORDS`, neurological
    convention (left on the left), as nilearn's ``plot_anat`` shows them. Drawn with
    matplotlib alone: every cropped map lies on one fixed grid, so nilearn's resampling
    is not needed, and importing ``nilearn.plotting`` (it imports scikit-learn and
    scipy.stats) costs about 4 s on a 2-core machine, the whole report's budget for 20
    participants. The axes and the prior's contour are made once; each map replaces the
    previous one's pixels. Maps are drawn at 3 mm (every other voxel): at the panels'
    size (about 2 px per 3 mm) that shows as much and halves the cost. :meth:`draw`
    returns a PNG data URI.

    >>> volume = np.zeros((121, 128, 121), np.float32); volume[40:80, 40:90, 40:80] = 0.5
    >>> panels = GreyMatterPanels(volume)
    >>> [panels.draw(volume)[:22], panels.draw(volume / 2)[:22]]
    ['data:image/png;base64,', 'data:image/png;base64,']
    """

    #: (axis cut, the two axes shown (across, up), letters at the left and right sides)
    PLANES = ((0, (1, 2), ("P", "A")), (1, (0, 2), ("L", "R")), (2, (0, 1), ("L", "R")))

    def __init__(self, prior):
        coarse, self._axes = _world_ordered(prior, 2)  # the grid maps are drawn on
        grid_shape = coarse.shape
        prior, prior_axes = _world_ordered(prior, 1)
        self._figure = _figure(*PANEL_SIZE)
        self._figure.set_facecolor("black")
        widths = [np.ptp(_edges(self._axes, grid_shape, plane[1][0])) for plane in self.PLANES]
        axes = self._figure.subplots(1, 3, gridspec_kw={"width_ratios": widths})
        self._figure.subplots_adjust(left=0, right=1, bottom=0, top=1, wspace=0.02)
        self._images = []
        for ax, (cut, (across, up), sides) in zip(axes, self.PLANES):
            extent = (*_edges(self._axes, grid_shape, across),
                      *_edges(self._axes, grid_shape, up))
            ax.set_axis_off()
            image = ax.imshow(np.zeros((2, 2)), cmap="gray", vmin=0, vmax=1, origin="lower",
                              extent=extent, interpolation="nearest")
            self._images.append((image, cut))
            grid = np.meshgrid(_centres(prior_axes, prior.shape, across),
                               _centres(prior_axes, prior.shape, up))
            ax.contour(*grid, _plane(prior, prior_axes, cut).T, levels=[PRIOR_CONTOUR_LEVEL],
                       colors="r", linewidths=0.7)
            ax.set(xlim=extent[:2], ylim=extent[2:], aspect="equal")
            ax.text(0.02, 0.03, f"{'xyz'[cut]}={CUT_COORDS[cut]}", color="white", fontsize=9,
                    transform=ax.transAxes)
            for x, letter in zip((0.02, 0.92), sides):
                ax.text(x, 0.88, letter, color="white", fontsize=9, transform=ax.transAxes)

    def draw(self, volume):
        ordered, _ = _world_ordered(volume, 2)
        for image, cut in self._images:
            image.set_data(_plane(ordered, self._axes, cut).T)
        return png_data_uri(self._figure, dpi=PANEL_DPI)


def _centres(axes, shape, axis):
    """World coordinates (mm) of the voxel centres along ``axis``."""
    first, spacing = axes[axis]
    return first + spacing * np.arange(shape[axis])


def _edges(axes, shape, axis):
    """``(low, high)`` world edges (mm) of the voxels along ``axis``: imshow's extent."""
    centres, half = _centres(axes, shape, axis), axes[axis][1] / 2
    return centres[0] - half, centres[-1] + half


def _plane(ordered, axes, cut):
    """The plane of a world-ordered volume nearest to ``CUT_COORDS[cut]``."""
    first, spacing = axes[cut]
    index = round((CUT_COORDS[cut] - first) / spacing)
    return np.take(ordered, min(max(index, 0), ordered.shape[cut] - 1), axis=cut)


def principal_components(matrix, n_components=2):
    """``(scores, explained_variance_ratio)`` of the first principal components.

    The same numbers as scikit-learn's ``PCA(n_components, svd_solver="full")`` (signs as its
    ``svd_flip``: each component's largest loading positive), by one SVD: importing
    scikit-learn costs about 2.5 s on a 2-core machine, half the report's budget for 24
    participants, for three lines of linear algebra.

    >>> X = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 1.0], [2.0, 1.0]])
    >>> scores, ratio = principal_components(X)
    >>> scores[:, 0].tolist(), ratio.round(2).tolist()
    ([-1.0, 1.0, -1.0, 1.0], [0.8, 0.2])
    """
    centred = np.asarray(matrix, np.float64) - np.mean(matrix, axis=0)
    u, singular, vt = np.linalg.svd(centred, full_matrices=False)
    signs = np.sign(vt[np.arange(len(vt)), np.argmax(np.abs(vt), axis=1)])
    u, vt = u * signs, vt * signs[:, None]
    variance = singular ** 2
    ratio = variance / variance.sum() if variance.sum() > 0 else np.zeros_like(variance)
    return u[:, :n_components] * singular[:n_components], ratio[:n_components]


def pca_overview(matrix, groupings):
    """First two principal components of the embeddings, one panel per grouping; SVG.

    ``groupings`` is ``{column: [value per row]}`` (e.g. diagnosis, site, sex); with none,
    one panel of all participants.
    """
    scores, explained = principal_components(matrix)
    groupings = groupings or {"all": ["participant"] * len(matrix)}
    figure = _figure(3.3 * len(groupings), 3.0)
    axes = np.atleast_1d(figure.subplots(1, len(groupings)))
    for ax, (column, values) in zip(axes, groupings.items()):
        for value in sorted(set(values)):
            keep = np.array([v == value for v in values])
            ax.scatter(scores[keep, 0], scores[keep, 1], s=16, label=value)
        ax.set(xlabel=f"PC1 ({explained[0]:.0%})", ylabel=f"PC2 ({explained[1]:.0%})",
               title=f"by {column}")
        ax.legend(fontsize=7, loc="best")
    # fixed margins: a layout engine measures every label, doubling the figure's cost
    figure.subplots_adjust(left=0.25 / len(groupings), right=0.98, bottom=0.15, top=0.91,
                           wspace=0.35)
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

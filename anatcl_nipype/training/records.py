"""What a training run leaves for people: one record per epoch, the log TSV and the loss
curve."""

from pathlib import Path
from typing import NamedTuple

from anatcl_nipype.files import atomic_write

LOG_NAME = "training_log.tsv"
LOG_COLUMNS = ("epoch", "loss", "lr", "seconds")
FIGURE_STEM = "loss_curve"


class EpochRecord(NamedTuple):
    """One epoch: its number (from 1), mean training loss, learning rate and duration."""

    epoch: int
    loss: float
    lr: float
    seconds: float


def write_training_log(history, path):
    """Write the epochs as a TSV (``epoch``, ``loss``, ``lr``, ``seconds``), atomically.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "log.tsv"
    >>> write_training_log([EpochRecord(1, 4.25, 1e-4, 12.3456)], path).read_text().split()
    ['epoch', 'loss', 'lr', 'seconds', '1', '4.25', '0.0001', '12.346']
    """
    rows = ["\t".join(LOG_COLUMNS)]
    rows += [f"{r.epoch}\t{r.loss!r}\t{r.lr!r}\t{r.seconds:.3f}" for r in history]
    with atomic_write(path) as tmp:
        tmp.write_text("\n".join(rows) + "\n")
    return Path(path)


def plot_loss_curve(history, out_stem, title=""):
    """Draw the training loss per epoch; write ``<out_stem>.svg`` and ``.png``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(6.5, 4), layout="constrained")
    axes = figure.add_subplot()
    axes.plot([r.epoch for r in history], [r.loss for r in history], marker="o")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set(xlabel="Epoch", ylabel="Training loss")
    axes.set_title(title, fontsize="small", wrap=True)
    FigureCanvasAgg(figure)
    paths = []
    for kind in ("svg", "png"):
        path = Path(out_stem).with_name(f"{Path(out_stem).name}.{kind}")
        with atomic_write(path) as tmp:
            figure.savefig(tmp, format=kind, dpi=100,
                           metadata={"Date": None} if kind == "svg" else None)
        paths.append(path)
    return tuple(paths)

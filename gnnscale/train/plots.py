"""The training plots: loss and metrics per epoch, and temporal average precision against the
temporal batch size. Each function saves a PNG and returns the matplotlib Figure it drew."""
from pathlib import Path
from typing import Dict, List, Optional, Union

BEST_EPOCH_GID = "best-epoch"
SPLITS = ("train", "valid", "test")


def _figure(width: float, height: float, columns: int = 1):
    # A Figure of its own (not pyplot's): no global state, no GUI backend needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure, figure.subplots(1, columns)


def _integer_ticks(axis) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.xaxis.set_major_locator(MaxNLocator(integer=True))


def _mark_best_epoch(axis, best_epoch: int) -> None:
    axis.axvline(best_epoch, color="grey", linestyle="--", linewidth=1, label=f"best epoch {best_epoch}",
                 gid=BEST_EPOCH_GID)


def plot_history(rows: List[Dict[str, float]], path: Union[str, Path], title: str = "", metric: str = "accuracy",
                 best_epoch: Optional[int] = None):
    """Loss (left) and ``metric`` per split (right) against epoch (integer ticks), with the best
    validation epoch marked on both when given; saved as a PNG at ``path``."""
    figure, (loss_axis, metric_axis) = _figure(10, 4, columns=2)
    loss_axis.plot([row["epoch"] for row in rows], [row["loss"] for row in rows])
    loss_axis.set(xlabel="epoch", ylabel="training loss")
    for split in SPLITS:
        points = [(row["epoch"], row[split]) for row in rows if row.get(split) is not None]
        if points:
            metric_axis.plot(*zip(*points), marker="o", label=split)
    metric_axis.set(xlabel="epoch", ylabel=metric)
    for axis in (loss_axis, metric_axis):
        _integer_ticks(axis)
        if best_epoch:
            _mark_best_epoch(axis, best_epoch)
    metric_axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return figure


def _pres_label(pres: bool) -> str:
    return "with PRES" if pres else "without PRES"


def plot_precision_by_batch(rows: List[Dict], path: Union[str, Path], title: str):
    """Test average precision against temporal batch size (log scale, ticks at the sizes run),
    one line with and one without PRES. With one batch size there is no curve to draw: each
    result is a horizontal reference line labelled with its size and value."""
    if not rows:
        raise ValueError("no runs to plot")
    figure, axis = _figure(6, 4)
    sizes = sorted({row["batch_size"] for row in rows})
    for pres in sorted({row["pres"] for row in rows}):
        points = sorted((row["batch_size"], row["test"]) for row in rows if row["pres"] == pres)
        if len(sizes) == 1:
            (size, precision), = points
            axis.axhline(precision, color=f"C{int(pres)}",
                         label=f"{_pres_label(pres)}: {precision:.4f} at batch size {size}")
        else:
            axis.plot(*zip(*points), marker="o", label=_pres_label(pres))
    if len(sizes) == 1:
        precisions = [row["test"] for row in rows]
        margin = max(0.01, max(precisions) - min(precisions))  # the lines apart, not squeezed at the top
        axis.set_ylim(min(precisions) - margin, max(precisions) + margin)
        axis.set_xticks([])
        axis.set(xlabel=f"temporal batch size {sizes[0]} (one size run)")
    else:
        axis.set_xscale("log", base=2)
        axis.set_xticks(sizes, [str(size) for size in sizes])
        axis.minorticks_off()
        axis.set(xlabel="temporal batch size")
    axis.set(ylabel="test average precision", title=title)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return figure

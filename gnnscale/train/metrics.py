"""Per-epoch metrics: appended as JSON lines, and drawn as a loss / metric plot on request."""
import json
from pathlib import Path
from typing import Dict, List, Optional


class MetricsLog:
    def __init__(self, path: Optional[Path] = None, *, append: bool = False):
        self.path = Path(path) if path is not None else None
        self.rows: List[Dict[str, float]] = []
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not append:
                self.path.write_text("")

    def log(self, row: Dict[str, float]) -> None:
        self.rows.append(row)
        if self.path is not None:
            with open(self.path, "a") as stream:
                stream.write(json.dumps(row) + "\n")


def plot_history(rows: List[Dict[str, float]], path, title: str = "", metric: str = "accuracy") -> None:
    """Loss (left) and ``metric`` per split (right) against epoch, saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in rows]
    figure, (loss_axis, metric_axis) = plt.subplots(1, 2, figsize=(10, 4))
    loss_axis.plot(epochs, [row["loss"] for row in rows])
    loss_axis.set(xlabel="epoch", ylabel="training loss")
    for split in ("train", "valid", "test"):
        points = [(row["epoch"], row[split]) for row in rows if split in row]
        if points:
            metric_axis.plot(*zip(*points), marker="o", label=split)
    metric_axis.set(xlabel="epoch", ylabel=metric)
    metric_axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)

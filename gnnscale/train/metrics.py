"""Per-epoch metrics: appended as JSON lines, optionally written for TensorBoard, and drawn as a
loss / metric plot on request; and each run's own peak host and device memory."""
import json
import threading
from pathlib import Path
from typing import Dict, List, Optional, Union

import torch

from .plots import plot_history  # noqa: F401  (its home before plots.py)

TENSORBOARD_MISSING = ("tensorboard_dir needs the tensorboard package, which is not installed: "
                       "pip install tensorboard (or pip install 'gnnscale[tensorboard]')")


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


def check_tensorboard() -> None:
    """Raises a one-line ImportError naming the package when TensorBoard cannot be written."""
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise ImportError(TENSORBOARD_MISSING) from None


class TensorBoardLog:
    """Each epoch's row as TensorBoard scalars, by epoch: ``loss``, ``metric/<split>`` (epochs
    with an evaluation), ``time/<what>_seconds`` and ``throughput/<unit>_per_second``. Resuming
    after ``epoch`` drops what an interrupted run wrote after it."""

    def __init__(self, directory: Union[str, Path], *, resumed_after: int = 0):
        check_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(directory), purge_step=resumed_after + 1 if resumed_after else None)

    def log(self, row: Dict[str, float]) -> None:
        epoch = row["epoch"]
        for name, value in row.items():
            if name == "epoch" or not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            self.writer.add_scalar(_tensorboard_tag(name), value, epoch)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _tensorboard_tag(name: str) -> str:
    if name == "loss":
        return "loss"
    if name.endswith("_per_second"):
        return "throughput/" + name
    if name.endswith("seconds"):
        return "time/" + name
    return "metric/" + name


def _status_kib(field_name: str) -> Optional[int]:
    """A ``/proc/self/status`` field in KiB (VmRSS, VmHWM), or None where there is none."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_host_peak() -> bool:
    """Resets the kernel's peak resident size (VmHWM) to the current one; False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """The peak host memory (resident set) and device memory (allocated by torch) while it is
    open, not the process's since it started: the kernel's peak is reset at the start (Linux,
    /proc/self/clear_refs), else the resident size is sampled every ``interval`` seconds.

        with PeakMemory(device) as peak:
            ...
        peak.host_bytes, peak.device_bytes   # device_bytes: None off CUDA
    """

    def __init__(self, device: torch.device, interval: float = 0.01, *, reset_kernel_peak: bool = True):
        self.device, self.interval, self.reset_kernel_peak = torch.device(device), interval, reset_kernel_peak
        self.host_bytes: Optional[int] = None
        self.device_bytes: Optional[int] = None
        self._sampled_kib = 0
        self._stop = threading.Event()
        self._sampler: Optional[threading.Thread] = None
        self._kernel_peak = False

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self._kernel_peak = self.reset_kernel_peak and _status_kib("VmHWM") is not None and _reset_host_peak()
        if not self._kernel_peak:
            self._sampled_kib = _status_kib("VmRSS") or 0
            self._sampler = threading.Thread(target=self._sample, name="gnnscale-peak-memory", daemon=True)
            self._sampler.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._sampled_kib = max(self._sampled_kib, _status_kib("VmRSS") or 0)

    def __exit__(self, *exc) -> None:
        if self._sampler is not None:
            self._stop.set()
            self._sampler.join()
            self._sampled_kib = max(self._sampled_kib, _status_kib("VmRSS") or 0)
        kib = _status_kib("VmHWM") if self._kernel_peak else self._sampled_kib
        self.host_bytes = None if not kib else kib * 1024
        if self.device.type == "cuda":
            self.device_bytes = int(torch.cuda.max_memory_allocated(self.device))

"""Where the commands write their results and what every result file records: files go under
``--out`` (default ``results/<command>``) with names of letters, digits, '.', '_' and '-' only,
and each JSON result carries the run's provenance (configuration, versions, device, machine,
start time)."""
import datetime
import json
import os
import platform
import re
import socket
from pathlib import Path
from typing import Any, Dict, Optional

from ..atomic import write_atomically

RESULTS_ROOT = "results"
# Attributes of the parsed arguments that are not settings: the function a command runs, and when it started.
_NOT_SETTINGS = ("run", "started_utc")


def default_out(command: str) -> str:
    """The default ``--out`` of ``command`` (e.g. "bench-ogb"): results/<command>."""
    return f"{RESULTS_ROOT}/{command}"


def safe_name(*parts: Any) -> str:
    """``parts`` joined by '_', each reduced to [A-Za-z0-9._-] (any other run of characters becomes
    one '-'), so that a result's name needs no quoting in a shell."""
    cleaned = [re.sub(r"[^A-Za-z0-9._-]+", "-", str(part)).strip("-") for part in parts]
    return "_".join(part for part in cleaned if part)


def result_path(out, *parts: Any, suffix: str) -> Path:
    """``out/<safe_name(parts)><suffix>``, creating ``out``."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{safe_name(*parts)}{suffix}"


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def configuration(args) -> Dict[str, Any]:
    """Every argument's value, defaults resolved, as JSON values."""
    settings = {name: value for name, value in vars(args).items()
                if name not in _NOT_SETTINGS and not callable(value)}
    return json.loads(json.dumps(settings, default=str))


def provenance(args, device: str) -> Dict[str, Any]:
    """What a result file records about its run besides the results: the configuration, the
    versions, the device used (and the GPU's name), the machine and the UTC start time."""
    import torch

    from .. import __version__

    record = {"config": configuration(args), "gnnscale_version": __version__, "torch_version": torch.__version__,
              "python_version": platform.python_version(), "device": device, "gpu": None,
              "machine": {"hostname": socket.gethostname(), "cpu_count": os.cpu_count(),
                          "platform": platform.platform()},
              "started_utc": getattr(args, "started_utc", None) or utc_now()}
    if device.startswith("cuda"):
        record["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return record


def write_json(path, payload: Dict[str, Any], run: Optional[Dict[str, Any]] = None) -> Path:
    """Writes ``payload`` (with ``run``, the :func:`provenance`, under "provenance") as JSON,
    atomically."""
    document = dict(payload) if run is None else {**payload, "provenance": run}
    return write_atomically(Path(path), lambda stream: json.dump(document, stream, indent=2, default=str),
                            mode="w")

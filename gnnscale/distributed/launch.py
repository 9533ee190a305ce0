"""Starting ranks: under ``torchrun`` (environment variables), or as local processes from Python.

Every wait on another rank is bounded: process groups get a timeout (the caller's, else
$GNNSCALE_DIST_TIMEOUT, else 60 s) instead of gloo's 30 minutes, and a failed wait names the rank
that stopped answering (see :mod:`.liveness`). A rank under torchrun dies with its agent."""
from __future__ import annotations

import ctypes
import hashlib
import hmac
import io
import math
import os
import secrets
import signal
import sys
import tempfile
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from .liveness import Heartbeat, RankTimeoutError, explain, is_wait_failure

DEFAULT_TIMEOUT_S = 60.0
TIMEOUT_VARIABLE = "GNNSCALE_DIST_TIMEOUT"

# the process group this process joined through gnnscale: its timeout and heartbeat
_joined = {"timeout_s": None, "heartbeat": None}


def resolve_timeout(seconds: Optional[float] = None) -> float:
    """``seconds``, else $GNNSCALE_DIST_TIMEOUT, else 60 s; a ValueError unless positive and finite."""
    source = "timeout"
    if seconds is None:
        text = os.environ.get(TIMEOUT_VARIABLE)
        if text is None:
            return DEFAULT_TIMEOUT_S
        source = f"${TIMEOUT_VARIABLE}"
        try:
            seconds = float(text)
        except ValueError:
            raise ValueError(f"{source} must be a number of seconds, got {text!r}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{source} must be a positive number of seconds, got {seconds}")
    return float(seconds)


def group_timeout() -> timedelta:
    """The timeout for a sub-group: that of the group joined here, else :func:`resolve_timeout`'s."""
    seconds = _joined["timeout_s"]
    return timedelta(seconds=seconds if seconds is not None else resolve_timeout())


def init_from_environment(backend: str = "gloo", timeout_s: Optional[float] = None) -> None:
    """Joins the process group that ``torchrun`` described in RANK / WORLD_SIZE / MASTER_ADDR."""
    missing = [name for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise ValueError(f"not started by torchrun: {', '.join(missing)} unset (use `torchrun --nproc-per-node N "
                         f"-m gnnscale.programs.pipe ...` or `gnnscale pipe --nproc N`)")
    seconds = resolve_timeout(timeout_s)
    die_with_parent()
    _join(backend, seconds)


def _join(backend: str, timeout_s: float, **where) -> None:
    # torch.distributed.nn.functional takes group.WORLD as a default argument. Imported after the
    # group exists (torch_geometric imports it, through torch._dynamo, when a dataset loads), it would
    # keep the group, its gloo threads and sockets alive past destroy_process_group, to be torn down
    # during interpreter exit, where it can abort ("terminate called without an active exception").
    import torch.distributed.nn.functional  # noqa: F401

    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s), **where)
    store = dist.distributed_c10d._get_default_store()
    interval = min(0.5, timeout_s / 10)  # a failed wait is explained after three beats
    _joined["heartbeat"] = Heartbeat(store, dist.get_rank(), dist.get_world_size(), interval).start()
    _joined["timeout_s"] = timeout_s


def leave() -> None:
    """Stops the heartbeat, then destroys every process group (the heartbeat uses their store)."""
    heartbeat = _joined["heartbeat"]
    if heartbeat is not None:
        heartbeat.stop()
    _joined.update(timeout_s=None, heartbeat=None)
    if dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def naming_silent_ranks() -> Iterator[None]:
    """Turns a timed-out or broken wait into a :class:`RankTimeoutError` naming the silent ranks."""
    try:
        yield
    except RuntimeError as error:
        if isinstance(error, RankTimeoutError) or not is_wait_failure(error):
            raise
        raise explain(error, _joined["heartbeat"], _joined["timeout_s"] or resolve_timeout()) from error


def die_with_parent() -> None:
    """Linux: the kernel sends this process SIGKILL when its parent (the torchrun agent) ends, so
    a killed agent leaves no rank running under init."""
    if not sys.platform.startswith("linux"):
        return
    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() == 1:  # the parent ended before the request was in place
        os._exit(1)


# ---------------------------------------------------------------------- local ranks from Python
def _entry(rank: int, world_size: int, store: str, threads: int, function: Callable, args: tuple,
           results: str, key: bytes, timeout_s: float) -> None:
    torch.set_num_threads(threads)
    os.environ["LOCAL_WORLD_SIZE"] = str(world_size)  # as torchrun sets it: these ranks share this machine
    _join("gloo", timeout_s, init_method=f"file://{store}", rank=rank, world_size=world_size)
    try:
        with naming_silent_ranks():
            value = function(*args)
        _write_signed(Path(results) / f"rank{rank}.pt", value, key)
    finally:
        leave()


def _write_signed(path: Path, value: Any, key: bytes) -> None:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    payload = buffer.getvalue()
    path.write_bytes(hmac.new(key, payload, hashlib.sha256).digest() + payload)


def _read_signed(path: Path, key: bytes) -> Any:
    """A rank's return value. Arbitrary objects need a full unpickle, so the file must carry the
    signature made with this spawn's key, which only the parent and its ranks hold (in memory)."""
    data = path.read_bytes()
    size = hashlib.sha256().digest_size
    digest, payload = data[:size], data[size:]
    if not hmac.compare_digest(digest, hmac.new(key, payload, hashlib.sha256).digest()):
        raise ValueError(f"{path} is not signed by this spawn's ranks: refusing to unpickle it")
    return torch.load(io.BytesIO(payload), weights_only=False)


def spawn(world_size: int, function: Callable, *args: Any, threads_per_rank: int = 1,
          timeout_s: Optional[float] = None) -> List[Any]:
    """Runs ``function(*args)`` on ``world_size`` local gloo ranks; returns each rank's return value.
    ``function`` must be importable by name (defined at module level). A rank that waits on another
    for longer than ``timeout_s`` (default: :func:`resolve_timeout`) fails, naming the silent rank."""
    if world_size < 1:
        raise ValueError(f"world_size must be positive, got {world_size}")
    seconds = resolve_timeout(timeout_s)
    key = secrets.token_bytes(32)
    with tempfile.TemporaryDirectory(prefix="gnnscale-spawn-") as folder:
        store = os.path.join(folder, "store")
        mp.spawn(_entry, args=(world_size, store, threads_per_rank, function, args, folder, key, seconds),
                 nprocs=world_size, join=True)
        return [_read_signed(Path(folder) / f"rank{rank}.pt", key) for rank in range(world_size)]

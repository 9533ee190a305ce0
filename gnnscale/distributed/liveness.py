"""Which rank stopped answering. A timed-out gloo wait says only that it timed out; so every rank
counts heartbeats into the process group's store from a background thread, and after a timeout
the ranks whose count no longer moves are the ones that stopped (SIGSTOP, a hang, a dead host)."""
from __future__ import annotations

import threading
import time
from typing import List, Optional

import torch.distributed as dist

# fragments of gloo's messages for a wait that ran out of time or lost its peer
_WAIT_FAILURES = ("timed out", "timeout", "closed by peer", "reset by peer", "connection closed")


class RankTimeoutError(RuntimeError):
    """A wait on other ranks failed; ``ranks`` are the ones whose heartbeat stopped."""

    def __init__(self, message: str, ranks: List[int]):
        super().__init__(message)
        self.ranks = ranks


def is_wait_failure(error: BaseException) -> bool:
    return isinstance(error, RuntimeError) and any(text in str(error).lower() for text in _WAIT_FAILURES)


class Heartbeat:
    """Counts ``gnnscale/heartbeat/<rank>`` up in ``store`` every ``interval`` seconds until :meth:`stop`."""

    def __init__(self, store: dist.Store, rank: int, world_size: int, interval: float):
        self.store, self.rank, self.world_size, self.interval = store, rank, world_size, interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"gnnscale-heartbeat-{rank}", daemon=True)

    def start(self) -> "Heartbeat":
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ends the thread before the store goes away with the process group."""
        self._stopped.set()
        self._thread.join()

    def _beat(self) -> None:
        key = _key(self.rank)
        while not self._stopped.is_set():
            try:
                self.store.add(key, 1)
            except RuntimeError:
                return  # the store is gone or unreachable: the run is failing already
            self._stopped.wait(self.interval)

    def silent_ranks(self) -> Optional[List[int]]:
        """The other ranks whose count stands still over three beats; None if the store cannot tell."""
        try:
            before = self._counts()
            time.sleep(3 * self.interval)
            after = self._counts()
        except RuntimeError:
            return None
        return [rank for rank in range(self.world_size) if rank != self.rank and after[rank] == before[rank]]

    def _counts(self) -> List[int]:
        return [self.store.add(_key(rank), 0) for rank in range(self.world_size)]


def _key(rank: int) -> str:
    return f"gnnscale/heartbeat/{rank}"


def explain(error: RuntimeError, heartbeat: Optional[Heartbeat], timeout_s: float) -> RankTimeoutError:
    """The error to raise for a failed wait: it names the silent ranks where the heartbeats tell."""
    silent = heartbeat.silent_ranks() if heartbeat is not None else None
    if silent:
        who = f"rank {silent[0]}" if len(silent) == 1 else f"ranks {', '.join(map(str, silent))}"
        message = (f"{who} did not answer within {timeout_s:g} s (stopped, hung or gone: its heartbeat "
                   f"stopped); {error}")
    elif silent == []:
        message = (f"a wait timed out after {timeout_s:g} s although every rank is alive (their heartbeats "
                   f"go on): the ranks wait on each other, or one is slower than the timeout; {error}")
    else:
        message = f"a wait on another rank failed after at most {timeout_s:g} s; which rank is unknown; {error}"
    return RankTimeoutError(message, silent or [])

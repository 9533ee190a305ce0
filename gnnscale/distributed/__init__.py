"""Processes working together: starting and joining ranks with bounded waits (``launch``), telling
which rank stopped answering (``liveness``), and sharing data-parallel work between ranks
(``ranks``). Used by the data-parallel Trainer and by the parallel full-graph engine."""
from .launch import init_from_environment, leave, naming_silent_ranks, resolve_timeout, spawn
from .liveness import RankTimeoutError
from .ranks import SINGLE, Ranks, current_ranks

__all__ = ["RankTimeoutError", "Ranks", "SINGLE", "current_ranks", "init_from_environment", "leave",
           "naming_silent_ranks", "resolve_timeout", "spawn"]

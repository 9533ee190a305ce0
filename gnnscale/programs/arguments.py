"""Argument types several programs share: each turns a flag's text into a value or says what is
wrong with it (argparse prints the message and exits with status 2)."""
import argparse
from typing import List


def fanouts(text: str) -> List[int]:
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"fanouts must be comma-separated integers, got {text!r}") from None
    if not values or any(f == 0 or f < -1 for f in values):
        raise argparse.ArgumentTypeError(f"each fanout must be positive or -1 (all neighbours), got {text!r}")
    return values


def thread_count(text: str) -> int:
    try:
        threads = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"threads must be an integer, got {text!r}") from None
    if threads < 0:
        raise argparse.ArgumentTypeError(f"threads must be 0 (batches prepared in the training thread) or more, "
                                         f"got {threads}")
    return threads


def gibibytes(text: str) -> float:
    """A size in GiB: a finite number, 0 or more (fractions allowed)."""
    try:
        size = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a size in GiB must be a number, got {text!r}") from None
    if not 0 <= size < float("inf"):
        raise argparse.ArgumentTypeError(f"a size in GiB must be a finite number >= 0, got {text!r}")
    return size

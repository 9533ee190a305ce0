"""Draws Trainer metrics logs (the JSON lines LoopConfig.log_path receives, one row per epoch) as
loss / metric PNGs with gnnscale.train.plots.plot_history, one figure per log, the best validation
epoch marked.

Usage: python tools/plot_history.py LOG [LOG ...] [--out DIR] [--metric accuracy]

Each LOG becomes LOG's name with a .png suffix, beside it or in --out DIR.
"""
import argparse
import json
import math
import sys
from pathlib import Path
from typing import Dict, List, Optional

from gnnscale.train.plots import plot_history


def read_log(path: Path) -> List[Dict]:
    """The rows of a metrics log, blank lines skipped; a line that is not a JSON object, or a
    row without an epoch and a loss, is refused with its line number."""
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: line {number} is not JSON ({error.msg})") from None
        if not isinstance(row, dict) or "epoch" not in row or "loss" not in row:
            raise ValueError(f"{path}: line {number} is not a metrics row with 'epoch' and 'loss'")
        rows.append(row)
    if not rows:
        raise ValueError(f"{path}: the log has no rows")
    return rows


def best_epoch(rows: List[Dict]) -> Optional[int]:
    """The epoch of the best validation metric, as the Trainer selects it (the first of ties)."""
    evaluated = [row for row in rows if isinstance(row.get("valid"), (int, float)) and not math.isnan(row["valid"])]
    return max(evaluated, key=lambda row: row["valid"])["epoch"] if evaluated else None


def output_paths(logs: List[Path], out: Optional[Path]) -> List[Path]:
    if out is None:
        return [log.with_suffix(".png") for log in logs]
    paths = [out / (log.stem + ".png") for log in logs]
    if len(set(paths)) != len(paths):
        raise ValueError("logs of the same name would overwrite each other's plot in --out; give them apart")
    return paths


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("logs", nargs="+", type=Path, help="metrics logs (JSON lines)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the PNGs (default: beside each log)")
    parser.add_argument("--metric", default="accuracy", help="what the split columns are (default: accuracy)")
    args = parser.parse_args(argv)
    for log in args.logs:
        if not log.is_file():
            raise ValueError(f"{log}: no such metrics log")
    paths = output_paths(args.logs, args.out)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    for log, path in zip(args.logs, paths):
        rows = read_log(log)
        plot_history(rows, path, title=log.stem, metric=args.metric, best_epoch=best_epoch(rows))
        print(f"{log}: {len(rows)} epochs -> {path}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ValueError as error:
        print(f"plot_history: error: {error}", file=sys.stderr)
        sys.exit(2)

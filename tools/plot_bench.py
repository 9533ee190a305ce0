"""Draws the benchmark results in bench/results/*.json (written by bench/common.py write_result) as
one bar chart per benchmark that compares gnnscale with a peer: its speed-ups where the file
records them ('speedup', 'gnnscale_speedup', 'speedup_vs_*', 'vs_*' figures), else the measured
rates (a '*_per_second' figure) of gnnscale's rows beside the peers'.

Usage: python tools/plot_bench.py [RESULTS_DIR] [--out results/plots]

A file that is not JSON, or holds no such comparison, is skipped with a note.
"""
import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS = ROOT / "bench" / "results"
DEFAULT_OUT = Path("results") / "plots"
NAME_FIELDS = ("method", "system", "case", "variant", "model", "kernel")
# Numbers that tell a row's setting apart (not measurements), shown in its label when they vary.
SETTING_NUMBERS = ("row_bytes", "batch_size", "world_size", "threads", "width", "lr", "p", "scale")
RATIO_WORDS = ("pss", "rss", "bytes", "memory")  # ratios of memory, not of speed


class Bar(NamedTuple):
    label: str
    value: float
    ours: bool  # a gnnscale figure (or a speed-up of gnnscale's)


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_speedup_key(key: str) -> bool:
    key = key.lower()
    if any(word in key for word in RATIO_WORDS):
        return False
    # 'gnnscale_2_vs_1_rank_throughput' is a scaling ratio, not a comparison with a peer
    return "speedup" in key or key.startswith("vs_") or key.startswith("gnnscale_vs_")


def row_tables(payload: Dict) -> Dict[str, List[Dict]]:
    """The lists of result rows (dicts) at the top of a result file, by key."""
    return {key: value for key, value in payload.items()
            if isinstance(value, list) and value and all(isinstance(row, dict) for row in value)}


def is_setting_value(value) -> bool:
    """Text, a flag or a list of integers (fanouts, a shape): a setting, not a measurement."""
    if isinstance(value, list):
        return all(isinstance(item, int) and not isinstance(item, bool) for item in value)
    return value is None or isinstance(value, (str, bool))


def setting_text(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def varying_settings(rows: List[Dict]) -> List[str]:
    """The fields besides the name that tell the rows apart: text, flags, lists (fanouts) and
    the known setting numbers, where they differ between rows."""
    keys = []
    for key in dict.fromkeys(key for row in rows for key in row):
        values = [row.get(key) for row in rows]
        setting = all(is_setting_value(value) for value in values) or key in SETTING_NUMBERS
        if key not in NAME_FIELDS and setting and len({setting_text(value) for value in values}) > 1:
            keys.append(key)
    return keys


def row_label(row: Dict, settings: List[str], prefix: str) -> str:
    name = next((str(row[field]) for field in NAME_FIELDS if field in row), "")
    details = [row[key] if isinstance(row[key], str) else f"{key} {setting_text(row[key])}"
               for key in settings if key in row]
    return " | ".join(part for part in [prefix, name] + details if part)


def speedup_bars(payload: Dict) -> List[Bar]:
    """Every recorded speed-up: in result rows, and in top-level dicts of ratios."""
    bars = []
    tables = {table: rows for table, rows in row_tables(payload).items()
              if any(is_speedup_key(key) and is_number(value) for row in rows for key, value in row.items())}
    for table, rows in tables.items():
        settings = varying_settings(rows)
        prefix = table if len(tables) > 1 else ""  # which table, where several have speed-ups
        for row in rows:
            for key, value in row.items():
                if is_speedup_key(key) and is_number(value):
                    label = row_label(row, settings, prefix)
                    bars.append(Bar(label if key == "speedup" else f"{label}: {key}", float(value), True))
    for table, ratios in payload.items():
        if isinstance(ratios, dict):
            bars += [Bar(f"{table}: {key}", float(value), True) for key, value in ratios.items()
                     if is_number(value) and (is_speedup_key(key) or table == "speedup")]
    return bars


def rate_bars(payload: Dict) -> List[Bar]:
    """The first '*_per_second' figure of a table whose rows name gnnscale and a peer."""
    for table, rows in row_tables(payload).items():
        named = [row for row in rows if any(field in row for field in NAME_FIELDS)]
        ours = [is_ours(row) for row in named]
        if not (any(ours) and not all(ours)):
            continue
        rate = next((key for row in named for key, value in row.items()
                     if key.endswith("_per_second") and is_number(value)), None)
        if rate is None:
            continue
        settings = varying_settings(named)
        return [Bar(f"{row_label(row, settings, '')}: {rate}", float(row[rate]), mine)
                for row, mine in zip(named, ours) if is_number(row.get(rate))]
    return []


def is_ours(row: Dict) -> bool:
    return any("gnnscale" in str(row.get(field, "")).lower() for field in NAME_FIELDS)


def machine_line(payload: Dict) -> str:
    machine = payload.get("machine") or {}
    parts = [machine.get("cuda_device"), f"{machine['cores']} cores" if machine.get("cores") else None,
             f"torch {machine['torch']}" if machine.get("torch") else None]
    return ", ".join(part for part in parts if part)


def draw(name: str, payload: Dict, bars: List[Bar], speedups: bool, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 1.2 + 0.32 * len(bars)))
    FigureCanvasAgg(figure)
    axis = figure.subplots()
    positions = range(len(bars))[::-1]  # the first row at the top
    axis.barh(list(positions), [bar.value for bar in bars], color=["C0" if bar.ours else "C1" for bar in bars])
    axis.set_yticks(list(positions), [bar.label for bar in bars], fontsize=7)
    if speedups:
        axis.axvline(1.0, color="grey", linestyle="--", linewidth=1)  # parity with the peer
        axis.set_xlabel("speed-up of gnnscale over the peer (x)")
    else:
        axis.set_xlabel("measured rate (gnnscale blue, peers orange)")
    for position, bar in zip(positions, bars):
        text = f"{bar.value:.3g}" if abs(bar.value) < 1000 else f"{bar.value:,.0f}"
        axis.annotate(text, (bar.value, position), xytext=(3, 0), textcoords="offset points", va="center", fontsize=7)
    axis.set_title(f"{name} ({machine_line(payload)})" if machine_line(payload) else name)
    figure.savefig(path, dpi=110, bbox_inches="tight")  # long labels kept whole


def plot_file(path: Path, out: Path) -> Optional[Path]:
    """The PNG drawn for one result file, or None with a note saying why there is none."""
    try:
        payload = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        print(f"skipped {path.name}: not a readable JSON file ({error})")
        return None
    if not isinstance(payload, dict):
        print(f"skipped {path.name}: not a result object")
        return None
    bars, speedups = speedup_bars(payload), True
    if not bars:
        bars, speedups = rate_bars(payload), False
    if not bars:
        print(f"skipped {path.name}: no gnnscale-vs-peer comparison in it")
        return None
    name = str(payload.get("benchmark") or path.stem)
    target = out / f"{path.stem}.png"
    draw(name, payload, bars, speedups, target)
    print(f"{path.name}: {len(bars)} {'speed-ups' if speedups else 'rates'} -> {target}")
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="?", type=Path, default=DEFAULT_RESULTS,
                        help="folder of result files (default: bench/results)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the PNGs (default: results/plots)")
    args = parser.parse_args(argv)
    if not args.results.is_dir():
        raise ValueError(f"{args.results}: no such folder of results")
    files = sorted(args.results.glob("*.json"))
    if not files:
        print(f"no result files in {args.results}")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    drawn = [plot_file(path, args.out) for path in files]
    print(f"{sum(path is not None for path in drawn)} of {len(files)} result files drawn in {args.out}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ValueError as error:
        print(f"plot_bench: error: {error}", file=sys.stderr)
        sys.exit(2)

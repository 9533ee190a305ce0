"""The developer scripts of tools/, each run as a command on small inputs."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gnnscale import Graph
from gnnscale.datasets import load_dataset
from gnnscale.train.metrics import MetricsLog

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("GNNSCALE_DATA", "/work/shared/datasets"))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

needs_cora = pytest.mark.skipif(not (DATA / "planetoid").is_dir(), reason="the Planetoid datasets are not available")


def run_tool(name, *args, expect=0):
    result = subprocess.run([sys.executable, str(ROOT / "tools" / name), *map(str, args)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "GNNSCALE_DATA": str(DATA)})
    assert result.returncode == expect, result.stdout + result.stderr
    return result


def assert_png(path: Path):
    data = path.read_bytes()
    assert len(data) > 1000 and data.startswith(PNG_SIGNATURE), path


def seconds_of(output: str, name: str) -> float:
    match = re.search(rf"^\s+{re.escape(name)}.*?\s([0-9.]+) s\s", output, flags=re.MULTILINE)
    assert match, f"no {name!r} line in:\n{output}"
    return float(match.group(1))


@needs_cora
def test_profile_training_splits_the_time_and_lists_operators(tmp_path):
    trace = tmp_path / "trace.json"
    output = run_tool("profile_training.py", "--dataset", "cora", "--fanouts", "5,5", "--hidden", "32",
                      "--steps", "4", "--warmup", "1", "--top", "12", "--device", "cpu", "--trace", trace).stdout
    total = float(re.search(r"over 4 steps \(([0-9.]+) s measured\)", output).group(1))
    loader, model = seconds_of(output, "loader"), seconds_of(output, "model step")
    assert model > 0 and loader > 0
    # the loop around the two timed parts costs next to nothing
    assert abs(total - (loader + model)) <= 0.05 * total + 0.002, output
    table = output.split("top 12 operators")[1]
    assert "aten::" in table and "Self CPU" in table
    assert "model: forward, backward, optimizer" in table  # the labelled phases are in the profile
    events = json.loads(trace.read_text())["traceEvents"]
    assert any(event.get("name") == "loader: next batch" for event in events)


def test_plot_bench_draws_comparisons_and_skips_the_rest(tmp_path):
    results, out = tmp_path / "results", tmp_path / "plots"
    results.mkdir()
    for name in ("sampling.json", "temporal.json", "synthetic_scale.json"):
        shutil.copy(ROOT / "bench" / "results" / name, results / name)
    (results / "broken.json").write_text("{not json")
    output = run_tool("plot_bench.py", results, "--out", out).stdout
    assert sorted(path.name for path in out.iterdir()) == ["sampling.png", "temporal.png"]
    for path in out.iterdir():
        assert_png(path)
    speedups = sum(1 for row in json.loads((results / "sampling.json").read_text())["results"] if "speedup" in row)
    assert f"sampling.json: {speedups} speed-ups" in output
    assert "temporal.json: 11 rates" in output  # no speed-up recorded: gnnscale's and pyg's events/s
    assert "skipped broken.json: not a readable JSON file" in output
    assert "skipped synthetic_scale.json: no gnnscale-vs-peer comparison" in output


def write_log(path: Path, valid):
    log = MetricsLog(path)
    for epoch, accuracy in enumerate(valid, start=1):
        log.log({"epoch": epoch, "loss": 2.0 / epoch, "train_seconds": 0.1, "seconds": 0.1, "eval_seconds": 0.01,
                 "train": accuracy + 0.1, "valid": accuracy, "test": accuracy - 0.05})


def test_plot_history_draws_one_png_per_log(tmp_path):
    first, second, out = tmp_path / "a" / "run.jsonl", tmp_path / "b.jsonl", tmp_path / "plots"
    write_log(first, [0.5, 0.7, 0.6])
    write_log(second, [0.4, 0.45])
    output = run_tool("plot_history.py", first, second, "--out", out).stdout
    assert f"{first}: 3 epochs" in output and f"{second}: 2 epochs" in output
    assert sorted(path.name for path in out.iterdir()) == ["b.png", "run.png"]
    for path in out.iterdir():
        assert_png(path)
    run_tool("plot_history.py", second)  # beside the log by default
    assert_png(tmp_path / "b.png")


def test_plot_history_refuses_a_broken_log(tmp_path):
    log = tmp_path / "bad.jsonl"
    log.write_text('{"epoch": 1, "loss": 0.5}\nnot json\n')
    result = run_tool("plot_history.py", log, expect=2)
    assert "line 2 is not JSON" in result.stderr
    assert not (tmp_path / "bad.png").exists()


def edge_set(graph: Graph):
    source, target = graph.edge_index()
    names = graph.node_names if graph.node_names is not None else range(graph.num_nodes)
    names = [int(name) if not isinstance(name, str) else name for name in names]
    return {(names[a], names[b]) for a, b in zip(source.tolist(), target.tolist())}


@needs_cora
def test_edge_list_round_trips_cora(tmp_path):
    cora = load_dataset("cora", root=DATA).graph
    every, once = tmp_path / "cora.edg", tmp_path / "cora-once.edg"
    run_tool("edge_list_from_dataset.py", "cora", every)
    assert len(every.read_text().splitlines()) == cora.num_edges
    back = Graph.from_edge_list(every)
    assert back.num_edges == cora.num_edges and edge_set(back) == edge_set(cora)
    output = run_tool("edge_list_from_dataset.py", "cora", once, "--once", "--sep", "space").stdout
    assert f"-> {cora.num_edges // 2} lines" in output  # cora has no self-loops
    back = Graph.from_edge_list(once, directed=False)
    assert back.num_edges == cora.num_edges and edge_set(back) == edge_set(cora)


def test_edge_list_writes_node_names(tmp_path):
    source = tmp_path / "named.txt"
    source.write_text("alice bob\nbob carol\ncarol alice\ndave alice\n")
    exported = tmp_path / "named.edg"
    run_tool("edge_list_from_dataset.py", source, exported, "--names", "--once")
    lines = exported.read_text().splitlines()
    assert sorted(lines) == ["alice\tbob", "alice\tcarol", "alice\tdave", "bob\tcarol"]
    original = load_dataset(str(source)).graph
    back = Graph.from_edge_list(exported, directed=False)
    assert back.num_edges == original.num_edges and edge_set(back) == edge_set(original)
    assert torch.equal(back.degree(), original.degree())

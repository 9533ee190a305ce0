"""The OGB benchmark runner: seeded runs, a mean ± std table, JSON and CSV that agree with the runs."""
import csv
import json
import statistics

import pytest
import torch

from gnnscale.cli import main
from gnnscale.train.benchmark import run_benchmark
from gnnscale.train.node_trainer import split_accuracy


def test_ogb_evaluator_scores_like_plain_accuracy():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(500, 40, generator=gen)
    labels = torch.randint(0, 40, (500,), generator=gen)
    splits = {"train": torch.arange(0, 300), "valid": torch.arange(300, 400), "test": torch.arange(400, 500)}
    plain = split_accuracy(logits, labels, splits)
    assert split_accuracy(logits, labels, splits, "ogbn-arxiv") == pytest.approx(plain, rel=1e-12)


def test_runner_on_cora_summarises_its_runs(data_root, tmp_path):
    report = run_benchmark("cora", "sage", runs=2, epochs=4, root=data_root, progress=False,
                           options={"fanouts": [10, 10], "hidden": 64, "lr": 0.01, "eval_every": 2})
    assert [r.seed for r in report.runs] == [0, 1]
    assert report.runs[0].test != report.runs[1].test or report.runs[0].valid != report.runs[1].valid
    for record in report.runs:
        assert record.test > 0.6 and record.seconds_per_epoch > 0 and record.peak_memory_bytes > 0
    summary = report.summary()
    tests = [r.test for r in report.runs]
    assert summary["test"]["mean"] == pytest.approx(statistics.fmean(tests))
    assert summary["test"]["std"] == pytest.approx(statistics.stdev(tests))
    # 2-layer SAGE 1433 -> 64 -> 7: (1433 * 64 + 64) + 1433 * 64 + (64 * 7 + 7) + 64 * 7
    assert report.parameters == 2 * 1433 * 64 + 64 + 2 * 64 * 7 + 7

    paths = report.write(tmp_path)
    payload = json.loads(paths["json"].read_text())
    assert payload["options"]["fanouts"] == [10, 10] and len(payload["runs"]) == 2
    rows = list(csv.DictReader(paths["csv"].open()))
    assert [row["run"] for row in rows] == ["0", "1", "mean", "std"]
    assert float(rows[2]["test"]) == pytest.approx(summary["test"]["mean"])
    table = report.table()
    assert f"{summary['test']['mean']:.4f} ± {summary['test']['std']:.4f}" in table and "parameters" in table


def test_cli_runs_a_synthetic_preset(tmp_path, capsys):
    code = main(["bench", "ogb", "--dataset", "synthetic-arxiv", "--scale", "0.01", "--model", "gcn",
                 "--epochs", "1", "--fanouts", "5,5", "--hidden", "32", "--out", str(tmp_path), "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "synthetic-arxiv · gcn · 1 run(s) × 1 epochs · cpu" in out
    assert (tmp_path / "synthetic-arxiv_gcn.json").exists() and (tmp_path / "synthetic-arxiv_gcn.csv").exists()


def test_runner_refuses_datasets_it_cannot_train(data_root, capsys):
    assert main(["bench", "ogb", "--dataset", "wikipedia", "--root", str(data_root), "--quiet"]) == 2
    assert "node classification and link prediction" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "ogb", "--dataset", "cora", "--fanouts", "10,x"])


def test_full_graph_options_reach_link_trainers_only(data_root, capsys):
    from test_link_trainer import community_link_dataset

    from gnnscale.train.benchmark import make_trainer, task_defaults

    links = community_link_dataset()
    options = {**task_defaults(links), "full_graph": True, "num_layers": 1, "grad_clip": 1.0, "hidden": 16}
    trainer = make_trainer(links, "sage", epochs=1, seed=0, device="cpu", options=options, progress=False)
    assert trainer.adjacency is not None and trainer.modules["encoder"].num_layers == 1 and trainer.grad_clip == 1.0
    assert main(["bench", "ogb", "--dataset", "cora", "--root", str(data_root), "--full-graph", "--quiet"]) == 2
    assert "full_graph apply to link prediction only" in capsys.readouterr().err

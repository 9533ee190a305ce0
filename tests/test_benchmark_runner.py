"""The OGB benchmark runner: seeded runs, a mean ± std table, JSON and CSV that agree with the
runs, and one set of defaults shared by the command line, the runner and the Python API."""
import csv
import dataclasses
import inspect
import json
import statistics

import pytest
import torch

from gnnscale.programs.main import build_parser, main
from gnnscale.datasets import generate_synthetic
from gnnscale.train import (LargeGTConfig, LargeGTTask, LinkConfig, LinkTask, LoopConfig, NodeConfig, NodeTask,
                            TrainResult)
from gnnscale.programs.ogb_runner import make_trainer, run_benchmark, task_defaults, task_type
from gnnscale.train.config import DEMO_LOOP, DEMO_OPTIMIZER, DEMO_TASK
from gnnscale.train.node import split_accuracy
from test_link_trainer import community_link_dataset


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


def test_full_graph_options_reach_link_tasks_only(data_root, capsys):
    links = community_link_dataset()
    assert task_type(links, "sage") is LinkTask
    options = {**task_defaults(LinkTask), "full_graph": True, "num_layers": 1, "grad_clip": 1.0, "hidden": 16}
    trainer = make_trainer(links, "sage", epochs=1, seed=0, device="cpu", options=options, progress=False)
    assert trainer.task.adjacency is not None and trainer.modules["encoder"].num_layers == 1
    assert trainer.optimizer_config.grad_clip == 1.0
    assert main(["bench", "ogb", "--dataset", "cora", "--root", str(data_root), "--full-graph", "--quiet"]) == 2
    assert "full_graph: not an option of NodeConfig, the optimiser or the training loop" in capsys.readouterr().err


def plain_values(values):
    return {name: list(value) if isinstance(value, tuple) else value for name, value in values.items()}


def api_defaults(config, optimizer):
    """The runner's options as the Python API's configs state them."""
    loop = LoopConfig()
    return plain_values({**dataclasses.asdict(config), "optimizer": optimizer.name, "lr": optimizer.lr,
                         "weight_decay": optimizer.weight_decay, "grad_clip": optimizer.grad_clip,
                         "eval_every": loop.eval_every, "patience": loop.patience, "precision": loop.precision})


def test_the_command_line_the_runner_and_the_python_api_share_their_defaults(tmp_path, monkeypatch, capsys):
    # gnnscale bench ogb with no options trains with the Python API's defaults, and says so.
    assert main(["bench", "ogb", "--dataset", "synthetic-arxiv", "--scale", "0.005", "--epochs", "1",
                 "--out", str(tmp_path), "--quiet"]) == 0
    report = json.loads((tmp_path / "synthetic-arxiv_sage.json").read_text())
    assert report["options"] == api_defaults(NodeConfig(), NodeTask.default_optimizer)
    # Every option of bench ogb but --epochs defaults to None, leaving the default to the runner;
    # --epochs defaults to the runner's epochs, the loop's.
    bench = build_parser().parse_args(["bench", "ogb", "--dataset", "cora"])
    assert bench.epochs == inspect.signature(run_benchmark).parameters["epochs"].default == LoopConfig().epochs
    for option in ("fanouts", "batch_size", "hidden", "lr", "dropout", "eval_every", "patience", "threads",
                   "precision", "layers", "grad_clip", "predictor_layers", "corrupt", "num_tokens", "codebook",
                   "eval_rounds", "host_cache_gib", "inference_memory_gib"):
        assert getattr(bench, option) is None, option
    disk = build_parser().parse_args(["bench", "ogb", "--dataset", "/data/papers", "--host-cache-gib", "4",
                                      "--inference-memory-gib", "0.5"])
    assert (disk.host_cache_gib, disk.inference_memory_gib) == (4.0, 0.5)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "ogb", "--dataset", "cora", "--host-cache-gib", "-1"])

    # The runner's defaults for each task are its config's, its optimiser's and the loop's, and
    # the Trainers it builds from them hold exactly those.
    small = generate_synthetic(300, 2000, 8, 3, seed=0)
    datasets = {NodeTask: small, LinkTask: community_link_dataset(), LargeGTTask: small}
    for task, config in ((NodeTask, NodeConfig()), (LinkTask, LinkConfig()), (LargeGTTask, LargeGTConfig())):
        assert plain_values(task_defaults(task)) == api_defaults(config, task.default_optimizer)
        model = "largegt" if task is LargeGTTask else "sage"
        trainer = make_trainer(datasets[task], model, epochs=1, seed=0, device="cpu", options=task_defaults(task),
                               progress=False)
        assert type(trainer.task) is task and trainer.task.config == config
        assert trainer.optimizer_config == task.default_optimizer
        assert trainer.loop == LoopConfig(epochs=1, progress=False)
    assert LargeGTTask.default_optimizer.name == "adamw"

    # gnnscale demo's options default to the demo job's configs, and its Trainer holds them.
    demo = build_parser().parse_args(["demo"])
    assert (demo.fanouts, demo.batch_size, demo.hidden, demo.threads) == \
        (list(DEMO_TASK.fanouts), DEMO_TASK.batch_size, DEMO_TASK.hidden, DEMO_TASK.num_threads)
    assert (demo.lr, demo.epochs, demo.seed) == (DEMO_OPTIMIZER.lr, DEMO_LOOP.epochs, DEMO_LOOP.seed)
    built = []

    def record(trainer):
        built.append(trainer)
        return TrainResult(1, {"train": 0.0, "valid": 0.0, "test": 0.0}, "accuracy")

    from gnnscale.train import Trainer

    monkeypatch.setattr(Trainer, "fit", record)
    assert main(["demo", "--scale", "0.001"]) == 0
    capsys.readouterr()
    (trainer,) = built
    assert trainer.task.config == DEMO_TASK and trainer.optimizer_config == DEMO_OPTIMIZER
    assert (trainer.loop.epochs, trainer.loop.seed, trainer.loop.patience, trainer.loop.precision) == \
        (DEMO_LOOP.epochs, DEMO_LOOP.seed, DEMO_LOOP.patience, DEMO_LOOP.precision)

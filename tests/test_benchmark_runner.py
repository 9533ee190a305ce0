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
                            Trainer, TrainResult)
from gnnscale.programs.ogb_runner import CSV_COLUMNS, make_trainer, run_benchmark, task_defaults, task_type
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


def recording_fits(monkeypatch):
    """The TrainResult of every Trainer.fit from here on, in order."""
    results = []
    fit = Trainer.fit

    def recorded(trainer, *args, **kwargs):
        results.append(fit(trainer, *args, **kwargs))
        return results[-1]

    monkeypatch.setattr(Trainer, "fit", recorded)
    return results


def test_runner_on_cora_summarises_its_runs(data_root, tmp_path, monkeypatch):
    fits = recording_fits(monkeypatch)
    report = run_benchmark("cora", "sage", runs=2, epochs=4, root=data_root, progress=False,
                           options={"fanouts": [10, 10], "hidden": 64, "lr": 0.01, "eval_every": 2})
    assert [r.seed for r in report.runs] == [0, 1]
    assert report.runs[0].test != report.runs[1].test or report.runs[0].valid != report.runs[1].valid
    assert len(fits) == 2
    for record, result in zip(report.runs, fits):  # each run's figures are its own fit's
        assert record.test > 0.6 and (record.epochs_trained, record.evaluations) == (4, 2)
        assert record.train_seconds_per_epoch == result.seconds_per_epoch > 0
        assert record.eval_seconds_per_evaluation == result.eval_seconds_per_evaluation > 0
        assert record.seconds_per_epoch_with_eval == result.seconds_per_epoch_with_eval > record.train_seconds_per_epoch
        assert record.peak_host_memory_bytes == result.peak_host_memory_bytes > 0
        assert record.peak_device_memory_bytes is None  # trained on the CPU
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


GIB = 2 ** 30


def fitted(train_seconds_per_epoch, eval_seconds, evaluations, peak_host_bytes, epochs=4):
    """A TrainResult as a fit of ``epochs`` epochs reports it."""
    return TrainResult(2, {"train": 0.9, "valid": 0.8, "test": 0.7}, "accuracy",
                       seconds_per_epoch=train_seconds_per_epoch, epochs_trained=epochs,
                       train_seconds=train_seconds_per_epoch * epochs, eval_seconds=eval_seconds,
                       evaluations=evaluations, eval_seconds_per_evaluation=eval_seconds / evaluations,
                       seconds_per_epoch_with_eval=train_seconds_per_epoch + eval_seconds / epochs,
                       peak_host_memory_bytes=peak_host_bytes)


def take_tensorboard_as_present(monkeypatch):
    """Its absence is refused apart (tests/test_cli_conventions.py); the fits here write nothing."""
    monkeypatch.setattr("gnnscale.train.metrics.check_tensorboard", lambda: None)
    monkeypatch.setattr("gnnscale.train.trainer.check_tensorboard", lambda: None)


def test_the_report_holds_each_runs_own_times_and_peak_memory_labelled(monkeypatch, tmp_path):
    take_tensorboard_as_present(monkeypatch)
    # The second run peaks lower than the first: a process-wide peak would have reported the first's.
    results = iter([fitted(1.0, 1.4, 2, 3 * GIB), fitted(3.0, 1.8, 2, 1 * GIB)])
    built = []

    def fit(trainer):
        built.append(trainer)
        return next(results)

    monkeypatch.setattr(Trainer, "fit", fit)
    report = run_benchmark("synthetic-arxiv", runs=2, epochs=4, dataset_options={"scale": 0.005}, progress=False,
                           tensorboard_dir=tmp_path / "tb")
    assert [trainer.loop.tensorboard_dir for trainer in built] == [tmp_path / "tb" / "run0", tmp_path / "tb" / "run1"]
    assert [r.peak_host_memory_bytes for r in report.runs] == [3 * GIB, 1 * GIB]
    assert [r.train_seconds_per_epoch for r in report.runs] == [1.0, 3.0]
    assert [r.eval_seconds_per_evaluation for r in report.runs] == [0.7, 0.9]
    assert [r.seconds_per_epoch_with_eval for r in report.runs] == [1.35, 3.45]
    lines = report.table().splitlines()
    assert lines[4:] == ["training time     2.00 ± 1.41 s per epoch (evaluation excluded)",
                         "evaluation time   0.80 ± 0.14 s per evaluation (2 per run)",
                         "epoch time        2.40 ± 1.48 s per epoch with evaluation",
                         "peak host memory  2.00 GiB (resident set)"]  # no GPU line on the CPU
    assert "peak_device_memory_bytes" not in report.summary()

    paths = report.write(tmp_path / "out")
    rows = list(csv.DictReader(paths["csv"].open()))
    assert list(rows[0]) == CSV_COLUMNS
    assert {name: rows[1][name] for name in ("train_seconds_per_epoch", "eval_seconds_per_evaluation",
                                              "seconds_per_epoch_with_eval", "peak_host_memory_bytes",
                                              "peak_device_memory_bytes")} == \
        {"train_seconds_per_epoch": "3.0", "eval_seconds_per_evaluation": "0.9", "seconds_per_epoch_with_eval": "3.45",
         "peak_host_memory_bytes": str(GIB), "peak_device_memory_bytes": ""}
    assert float(rows[2]["peak_host_memory_bytes"]) == 2 * GIB  # the mean row
    payload = json.loads(paths["json"].read_text())
    second = payload["runs"][1]
    assert second["peak_host_memory_bytes"] == GIB and second["peak_device_memory_bytes"] is None
    assert payload["summary"]["seconds_per_epoch_with_eval"]["mean"] == pytest.approx(2.4)


def test_bench_ogb_and_demo_hand_tensorboard_dir_to_the_trainer(monkeypatch, tmp_path, capsys):
    take_tensorboard_as_present(monkeypatch)
    built = []

    def fit(trainer):
        built.append(trainer)
        return fitted(1.0, 0.7, 1, GIB)

    monkeypatch.setattr(Trainer, "fit", fit)
    assert main(["bench", "ogb", "--dataset", "synthetic-arxiv", "--scale", "0.005", "--epochs", "1", "--runs", "2",
                 "--tensorboard-dir", str(tmp_path / "tb"), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert main(["demo", "--scale", "0.001", "--epochs", "1", "--tensorboard-dir", str(tmp_path / "demo-tb")]) == 0
    capsys.readouterr()
    assert [str(trainer.loop.tensorboard_dir) for trainer in built] == \
        [str(tmp_path / "tb" / "run0"), str(tmp_path / "tb" / "run1"), str(tmp_path / "demo-tb")]


def test_demo_prints_training_and_evaluation_time_apart(monkeypatch, capsys):
    monkeypatch.setattr(Trainer, "fit", lambda trainer: fitted(1.0, 3.5, 5, GIB, epochs=15))
    assert main(["demo", "--scale", "0.001"]) == 0
    out = capsys.readouterr().out
    assert "time      training 1.00 s/epoch, evaluation 0.70 s per evaluation (5 evaluations)\n" in out


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

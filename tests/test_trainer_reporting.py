"""What the Trainer reports: training and evaluation time apart, the progress bar and early
stopping, TensorBoard scalars, the plots, each run's own peak memory, and the progress of the
embedding evaluation."""
import json
import logging
import sys
import time

import numpy as np
import pytest
import torch

from gnnscale.datasets import generate_synthetic
from gnnscale.embedding.evaluate import node_classification
from gnnscale.train import NodeTask, Trainer
from gnnscale.train.metrics import TENSORBOARD_MISSING, PeakMemory
from gnnscale.train.plots import BEST_EPOCH_GID, plot_history, plot_precision_by_batch

EVAL_PAUSE = 0.2  # seconds each evaluation takes on purpose, to tell it from training
MIB = 2**20
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def tiny_dataset():
    return generate_synthetic(400, 2400, 8, 3, homophily=0.8, feature_signal=0.3, seed=1)


def tiny_task():
    return NodeTask(tiny_dataset(), "sage", fanouts=[3], batch_size=128, hidden=8)


def slow_plateau(monkeypatch, valid=0.5):
    """Every evaluation takes EVAL_PAUSE seconds and never improves on the first."""
    def evaluate(self):
        time.sleep(EVAL_PAUSE)
        return {"train": 0.5, "valid": valid, "test": 0.5}

    monkeypatch.setattr(NodeTask, "evaluate", evaluate)


def test_training_and_evaluation_times_are_reported_apart(monkeypatch, tmp_path):
    slow_plateau(monkeypatch)
    log_path = tmp_path / "log.jsonl"
    result = Trainer(tiny_task(), epochs=3, eval_every=2, progress=False, log_path=log_path).fit()
    rows = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert rows == result.history
    assert [row["eval_seconds"] is None for row in rows] == [True, False, False]  # evaluated after epochs 2 and 3
    assert all(row["eval_seconds"] >= EVAL_PAUSE for row in rows[1:])
    assert all(0 < row["train_seconds"] == row["seconds"] for row in rows)
    assert result.epochs_trained == 3 and result.evaluations == 2
    assert result.train_seconds == sum(row["train_seconds"] for row in rows)
    assert result.eval_seconds == sum(row["eval_seconds"] for row in rows[1:])
    assert result.seconds_per_epoch == result.train_seconds / 3  # training alone
    assert result.eval_seconds_per_evaluation == result.eval_seconds / 2
    assert result.seconds_per_epoch_with_eval == pytest.approx((result.train_seconds + result.eval_seconds) / 3)


def test_the_progress_bar_shows_only_what_is_known(monkeypatch, capsys):
    slow_plateau(monkeypatch, valid=0.625)
    Trainer(tiny_task(), epochs=3, eval_every=3, progress=True).fit()
    frames = [frame for frame in capsys.readouterr().err.split("\r") if "loss=" in frame]
    assert not any("nan" in frame for frame in frames)
    first_valid = next(i for i, frame in enumerate(frames) if "valid=" in frame)

    def losses(shown):
        return {frame.split("loss=")[1].split(",")[0] for frame in shown}

    # Epochs 1 and 2 (two losses) show no validation metric; epoch 3's evaluation (one loss) does.
    assert len(losses(frames[:first_valid])) == 2 and all("train=" in frame for frame in frames[:first_valid])
    assert len(losses(frames[first_valid:])) == 1
    assert "valid=0.625" in frames[-1] and "eval=0.2" in frames[-1]


def test_early_stopping_is_said_and_reported_without_a_progress_bar(monkeypatch, caplog):
    slow_plateau(monkeypatch)
    task = tiny_task()
    with caplog.at_level(logging.INFO, logger="gnnscale.train"):
        result = Trainer(task, epochs=6, patience=2, progress=False).fit()
    assert result.stopped_early and result.best_epoch == 1 and result.epochs_trained == 3
    assert [record.getMessage() for record in caplog.records] == [
        f"{task.name}: stopped early after epoch 3: 2 evaluation(s) without a better valid accuracy than epoch 1's"]


def test_tensorboard_receives_loss_metrics_and_times_per_epoch(monkeypatch, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    slow_plateau(monkeypatch)
    result = Trainer(tiny_task(), epochs=3, eval_every=2, progress=False, tensorboard_dir=tmp_path / "tb").fit()
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()

    def series(tag):
        return [(event.step, event.value) for event in events.Scalars(tag)]

    rows = result.history
    assert series("loss") == [(row["epoch"], pytest.approx(row["loss"], rel=1e-6)) for row in rows]
    assert series("time/train_seconds") == [(row["epoch"], pytest.approx(row["train_seconds"], rel=1e-6))
                                            for row in rows]
    assert series("time/eval_seconds") == [(row["epoch"], pytest.approx(row["eval_seconds"], rel=1e-6))
                                           for row in rows[1:]]
    assert series("metric/valid") == [(2, 0.5), (3, 0.5)]
    assert "throughput/seed_nodes_per_second" in events.Tags()["scalars"]


def test_tensorboard_logging_without_the_package_fails_at_construction(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard now raises ImportError
    with pytest.raises(ImportError) as error:
        Trainer(tiny_task(), epochs=1, progress=False, tensorboard_dir=tmp_path / "tb")
    assert str(error.value) == TENSORBOARD_MISSING and "pip install tensorboard" in str(error.value)


def test_the_history_plot_has_integer_epochs_and_marks_the_best(tmp_path):
    rows = [{"epoch": 1, "loss": 1.0}, {"epoch": 2, "loss": 0.8, "train": 0.6, "valid": 0.7, "test": 0.6},
            {"epoch": 3, "loss": 0.7, "train": 0.7, "valid": 0.6, "test": 0.6}]
    path = tmp_path / "history.png"
    figure = plot_history(rows, path, "sage", best_epoch=2)
    assert path.read_bytes()[:8] == PNG_MAGIC
    for axis in figure.axes:
        ticks = axis.get_xticks()
        assert len(ticks) > 1 and np.array_equal(ticks, np.round(ticks))
        markers = [line for line in axis.get_lines() if line.get_gid() == BEST_EPOCH_GID]
        assert [list(line.get_xdata()) for line in markers] == [[2, 2]]


def test_a_single_batch_size_is_drawn_as_a_reference_line(tmp_path):
    rows = [{"batch_size": 200, "pres": False, "test": 0.9}, {"batch_size": 200, "pres": True, "test": 0.95}]
    path = tmp_path / "ap.png"
    (axis,) = plot_precision_by_batch(rows, path, "tgn").axes
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert axis.get_xscale() == "linear"
    assert sorted(list(line.get_ydata()) for line in axis.get_lines()) == [[0.9, 0.9], [0.95, 0.95]]
    assert all(line.get_marker() in ("None", None, "") for line in axis.get_lines())
    assert "200" in axis.get_legend().get_texts()[0].get_text()


def test_several_batch_sizes_are_a_curve_with_ticks_at_the_sizes(tmp_path):
    rows = [{"batch_size": size, "pres": False, "test": 0.9 - size / 10000} for size in (100, 200, 800)]
    (axis,) = plot_precision_by_batch(rows, tmp_path / "ap.png", "tgn").axes
    assert axis.get_xscale() == "log"
    assert list(axis.get_xticks()) == [100, 200, 800]
    (curve,) = axis.get_lines()
    assert list(curve.get_xdata()) == [100, 200, 800]


class HungryTask(NodeTask):
    """Holds ``megabytes`` more host memory for a moment in every epoch."""

    def __init__(self, *args, megabytes: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.megabytes = megabytes

    def start_epoch(self, epoch):
        super().start_epoch(epoch)
        held = torch.ones(self.megabytes * MIB // 4)
        held.add_(1)  # written, so resident


def test_each_fit_reports_its_own_peak_memory():
    dataset = tiny_dataset()
    options = dict(fanouts=[3], batch_size=128, hidden=8)
    first = Trainer(HungryTask(dataset, "sage", megabytes=256, **options), epochs=2, progress=False).fit()
    second = Trainer(HungryTask(dataset, "sage", megabytes=0, **options), epochs=2, progress=False).fit()
    assert first.peak_host_memory_bytes - second.peak_host_memory_bytes > 200 * MIB
    assert first.peak_device_memory_bytes is None and second.peak_device_memory_bytes is None


def test_sampled_peak_memory_where_the_kernel_peak_cannot_be_reset():
    with PeakMemory("cpu", reset_kernel_peak=False) as larger:
        held = torch.ones(256 * MIB // 4)
        held.add_(1)
        time.sleep(0.1)  # several samples
        del held
    with PeakMemory("cpu", reset_kernel_peak=False) as smaller:
        time.sleep(0.05)
    assert larger.host_bytes - smaller.host_bytes > 200 * MIB


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_each_fit_reports_its_own_peak_device_memory():
    big = torch.empty(512 * MIB // 4, device="cuda")
    del big
    result = Trainer(tiny_task(), epochs=1, progress=False, device="cuda").fit()
    assert 0 < result.peak_device_memory_bytes < 256 * MIB


def embedding_problem():
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(60) % 3
    return torch.randn(60, 4, generator=generator) + labels[:, None].float(), labels


def test_node_classification_shows_its_progress_over_the_splits(capsys):
    vectors, labels = embedding_problem()
    node_classification(vectors, labels, ratios=[0.3, 0.6], repeats=2)
    shown = capsys.readouterr().err
    assert "4/4" in shown and "split" in shown and "ratio=0.6" in shown


def test_node_classification_progress_can_be_turned_off(capsys):
    vectors, labels = embedding_problem()
    quiet = node_classification(vectors, labels, ratios=[0.3, 0.6], repeats=2, progress=False)
    output = capsys.readouterr()
    assert output.err == "" and output.out == ""
    assert quiet == node_classification(vectors, labels, ratios=[0.3, 0.6], repeats=2)


def test_a_resumed_run_reports_the_times_of_all_its_epochs(monkeypatch, tmp_path):
    slow_plateau(monkeypatch)
    Trainer(tiny_task(), epochs=2, progress=False, checkpoint_dir=tmp_path).fit()
    resumed = Trainer(tiny_task(), epochs=3, progress=False, checkpoint_dir=tmp_path, resume=True).fit()
    rows = resumed.history
    assert [row["epoch"] for row in rows] == [1, 2, 3] and resumed.evaluations == 3
    assert resumed.train_seconds == sum(row["train_seconds"] for row in rows)
    assert resumed.eval_seconds == sum(row["eval_seconds"] for row in rows)

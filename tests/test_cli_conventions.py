"""The conventions every ``gnnscale`` command follows: --device auto by default and a one-line
refusal of a CUDA device torch cannot use, defaults in every --help, a parser that loads neither
torch nor numpy, ``gnnscale env``, results under results/<command> with shell-safe names, and the
provenance every result JSON records."""
import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gnnscale import __version__
from gnnscale.programs.arguments import resolve_device
from gnnscale.programs.main import build_parser, main
from gnnscale.programs.results import safe_name

PROJECT = Path(__file__).resolve().parents[1]
NO_CUDA = not torch.cuda.is_available()

# Each command that takes --device, with arguments naming data that does not exist: the refusal
# must come before anything is loaded, or these would fail on the missing data instead.
DEVICE_COMMANDS = {
    "demo": ["demo"],
    "bench ogb": ["bench", "ogb", "--dataset", "no-such-dataset"],
    "temporal": ["temporal", "--dataset", "no-such-dataset"],
    "embed": ["embed", "--input", "no-such-graph.txt", "--output", "never-written.npy"],
    "pipe": ["pipe", "--dataset", "no-such-dataset"],
}


def subparsers(parser: argparse.ArgumentParser, path=("gnnscale",)):
    """(path, parser) of the parser and of every command and sub-command below it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from subparsers(child, path + (name,))


def test_every_device_option_defaults_to_auto_which_is_cuda_only_where_visible():
    for name, argv in DEVICE_COMMANDS.items():
        assert build_parser().parse_args(argv).device in ("auto", None), name  # embed: None, the config's or auto
    from gnnscale.programs.embedding import embed_defaults

    assert embed_defaults()["device"] == "auto"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="--device must be auto, cpu, cuda or cuda:N, got 'gpu'"):
        resolve_device("gpu")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--device", "gpu"])


@pytest.mark.skipif(not NO_CUDA, reason="checks the refusal on a machine without CUDA")
@pytest.mark.parametrize("name", sorted(DEVICE_COMMANDS))
def test_every_command_refuses_cuda_without_it_in_one_line(name, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(DEVICE_COMMANDS[name] + ["--device", "cuda"]) == 2
    captured = capsys.readouterr()
    reason = (f"torch {torch.__version__} was built without CUDA" if torch.version.cuda is None
              else f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU")
    assert captured.err == f"gnnscale {name}: error: --device cuda: CUDA is not available ({reason})\n"
    assert list(tmp_path.iterdir()) == []  # nothing written, no rank started


@pytest.mark.skipif(not NO_CUDA, reason="checks the refusal on a machine without CUDA")
def test_a_pipe_rank_refuses_cuda_before_joining_the_others(capsys):
    from gnnscale.programs.pipe import main as rank_main

    assert rank_main(["--dataset", "no-such-dataset", "--device", "cuda:0"]) == 2
    assert capsys.readouterr().err.startswith("gnnscale pipe: error: --device cuda:0: CUDA is not available (")


def test_every_help_shows_every_default():
    checked = 0
    for path, parser in subparsers(build_parser()):
        formatter = parser._get_formatter()
        for action in parser._actions:
            if not action.option_strings or action.default in (None, argparse.SUPPRESS):
                continue
            assert "default:" in formatter._expand_help(action), (" ".join(path), action.option_strings)
            checked += 1
    assert checked > 50
    bench_help = build_parser()._subparsers._group_actions[0].choices["bench"]
    ogb_help = " ".join(bench_help._subparsers._group_actions[0].choices["ogb"].format_help().split())
    assert "(default: results/bench-ogb)" in ogb_help and "(default: auto)" in ogb_help


def test_every_option_says_what_it_does_and_library_decided_defaults_show_too():
    from gnnscale.embedding.skipgram import SkipGramSettings

    helps = {}
    for path, parser in subparsers(build_parser()):
        parser.format_help()  # fills in the defaults the library decides
        for action in parser._actions:
            if action.option_strings and action.help is not argparse.SUPPRESS and "-h" not in action.option_strings:
                assert action.help, (" ".join(path), action.option_strings)
                helps[(" ".join(path), action.option_strings[0])] = action.help
    assert f"(default: {SkipGramSettings().window})" in helps[("gnnscale embed", "--window")]
    assert "default: deepwalk" in helps[("gnnscale embed", "--method")]
    assert "(default: 5)" in helps[("gnnscale temporal", "--epochs")]
    assert "(default: recent)" in helps[("gnnscale temporal", "--strategy")]


def test_the_defaults_help_shows_are_the_librarys():
    from gnnscale.nn.temporal_model import TemporalModelConfig
    from gnnscale.programs import embedding, temporal
    from gnnscale.train.temporal import TemporalTask

    defaults = embedding.embed_defaults()
    assert embedding.HELP_DEFAULTS == {name: defaults[name] for name in embedding.HELP_DEFAULTS}
    model = TemporalModelConfig()
    assert temporal.HELP_DEFAULTS == {
        "epochs": TemporalTask.default_loop.epochs, "lr": TemporalTask.default_optimizer.lr,
        "memory_dim": model.memory_dim, "neighbors": model.num_neighbors, "strategy": model.strategy,
        "aggregator": model.aggregator, "pres_trend": model.pres_trend, "in_batch_visible": model.in_batch_visible}


def test_the_parser_and_help_load_neither_torch_nor_numpy():
    script = """
import contextlib, io, sys
import gnnscale
from gnnscale.programs.main import build_parser, main
for argv in (["--help"], ["info", "--help"], ["demo", "--help"], ["embed", "--help"], ["embed-eval", "--help"],
             ["temporal", "--help"], ["pipe", "--help"], ["prepare", "--help"], ["bench", "ogb", "--help"],
             ["env", "--help"]):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        main(argv)
build_parser().parse_args(["bench", "ogb", "--dataset", "cora", "--fanouts", "5,5"])
print(gnnscale.__version__, sorted(name for name in ("torch", "numpy") if name in sys.modules))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=PROJECT, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[-2] == f"{__version__} []"


def test_the_package_keeps_exporting_its_public_names():
    script = """
import gnnscale
from gnnscale import Graph, TemporalGraph, load_dataset, ops
from gnnscale.graph import Graph as direct
from gnnscale.datasets import load_dataset as loader
assert Graph is direct and load_dataset is loader and TemporalGraph.__name__ == "TemporalGraph"
assert callable(ops.neighbor_sample) and set(gnnscale.__all__) <= set(dir(gnnscale))
try:
    gnnscale.no_such_name
except AttributeError as error:
    print(error)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=PROJECT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "module 'gnnscale' has no attribute 'no_such_name'\n"


def test_env_reports_this_installation(capsys):
    assert main(["env", "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["gnnscale_version"] == __version__ and facts["torch_version"] == torch.__version__
    assert facts["python_version"] == platform.python_version()
    assert facts["cuda"] is torch.cuda.is_available() and facts["torch_cuda_version"] == torch.version.cuda
    assert facts["gpus"] == [{"index": i, "name": torch.cuda.get_device_name(i),
                              "memory_bytes": torch.cuda.get_device_properties(i).total_memory}
                             for i in range(torch.cuda.device_count())]
    if torch.version.cuda is None:  # a CPU-only torch builds no CUDA kernels
        assert facts["extension_cuda_kernels"] is False
    assert facts["threads"]["intra_op"] == torch.get_num_threads()
    assert facts["threads"]["parallel_info"] == torch.__config__.parallel_info()
    assert facts["cpu_count"] == os.cpu_count()
    assert facts["disk"]["engine"] in ("io_uring", "pread")
    assert facts["disk"]["io_uring"] is (facts["disk"]["engine"] == "io_uring")
    assert main(["env"]) == 0
    text = capsys.readouterr().out
    assert f"torch       {torch.__version__}" in text and f"disk tier   {facts['disk']['engine']}" in text


def test_results_go_to_results_command_with_shell_safe_names():
    parser = build_parser()
    assert parser.parse_args(["bench", "ogb", "--dataset", "cora"]).out == "results/bench-ogb"
    assert parser.parse_args(["temporal"]).out == "results/temporal"
    assert parser.parse_args(["pipe"]).out == "results/pipe"
    assert safe_name("temporal", "wikipedia-first20000", "tgn") == "temporal_wikipedia-first20000_tgn"
    assert safe_name("bench", "my data/set*[1]?", "sage") == "bench_my-data-set-1_sage"
    assert safe_name("parallel", "Cora", "pipeline", 2) == "parallel_Cora_pipeline_2"


def assert_provenance(run, args_expected, device="cpu"):
    assert {"config", "gnnscale_version", "torch_version", "python_version", "device", "gpu", "machine",
            "started_utc"} <= set(run)
    for name, value in args_expected.items():
        assert run["config"][name] == value, name
    assert (run["gnnscale_version"], run["torch_version"], run["python_version"]) == \
        (__version__, torch.__version__, platform.python_version())
    assert run["device"] == device and run["gpu"] is None
    assert run["machine"] == {"hostname": socket.gethostname(), "cpu_count": os.cpu_count(),
                              "platform": platform.platform()}
    assert run["started_utc"].endswith("+00:00") and run["started_utc"][:4].isdigit()


def test_bench_ogb_records_its_provenance(tmp_path):
    assert main(["bench", "ogb", "--dataset", "synthetic-arxiv", "--scale", "0.005", "--epochs", "1", "--hidden",
                 "16", "--out", str(tmp_path), "--quiet"]) == 0
    report = json.loads((tmp_path / "synthetic-arxiv_sage.json").read_text())
    assert_provenance(report["provenance"], {"dataset": "synthetic-arxiv", "model": "sage", "epochs": 1, "hidden": 16,
                                             "device": "cpu", "runs": 1, "scale": 0.005, "out": str(tmp_path),
                                             "fanouts": None, "nproc": 1})
    assert report["provenance"]["config"]["argv"][:4] == ["bench", "ogb", "--dataset", "synthetic-arxiv"]


def test_temporal_writes_shell_safe_names_and_records_its_provenance(data_root, tmp_path):
    assert main(["temporal", "--root", str(data_root), "--max-events", "1000", "--batch-size", "200", "--epochs",
                 "1", "--memory-dim", "8", "--mrr-negatives", "0", "--out", str(tmp_path), "--quiet",
                 "--tensorboard-dir", str(tmp_path / "tb")]) == 0
    assert [path.name.startswith("events.out.tfevents") for path in (tmp_path / "tb" / "200").iterdir()] == [True]
    shutil.rmtree(tmp_path / "tb")
    names = sorted(path.name for path in tmp_path.iterdir())
    assert names == ["temporal_wikipedia-first1000_tgn.json", "temporal_wikipedia-first1000_tgn_200.jsonl",
                     "temporal_wikipedia-first1000_tgn_ap.png"]
    report = json.loads((tmp_path / names[0]).read_text())
    assert report["dataset"] == "wikipedia-first1000" and [row["batch_size"] for row in report["runs"]] == [200]
    assert_provenance(report["provenance"], {"dataset": "wikipedia", "model": "tgn", "epochs": 1, "max_events": 1000,
                                             "device": "cpu", "batch_size": "200", "memory_dim": 8})
    from gnnscale.train import TemporalTask

    assert report["provenance"]["config"]["lr"] == TemporalTask.default_optimizer.lr  # the default, resolved


def test_embed_help_states_the_libraries_defaults():
    # embed's flags default to None (a config may set them), so their help states the library's defaults
    from gnnscale.embedding.evaluate import DEFAULT_RATIOS
    from gnnscale.embedding.skipgram import METHODS
    from gnnscale.programs.embedding import ALL_METHODS, embed_defaults

    assert ALL_METHODS == METHODS + ("fastrp",) and embed_defaults()["method"] == "deepwalk"
    assert DEFAULT_RATIOS == tuple(round(0.1 * k, 1) for k in range(1, 10))
    embed_eval = build_parser()._subparsers._group_actions[0].choices["embed-eval"]
    assert "(default: 0.1,0.2,...,0.9)" in " ".join(embed_eval.format_help().split())
    assert build_parser().parse_args(["embed-eval", "--embeddings", "e.npy", "--ratios", "0.5,0.25"]).ratios == \
        [0.5, 0.25]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["embed-eval", "--embeddings", "e.npy", "--ratios", "0.5,1"])


# Each command that takes --tensorboard-dir, naming data that does not exist: the refusal of a
# missing tensorboard package must come before anything is loaded or any rank started.
TENSORBOARD_COMMANDS = {
    "demo": ["demo"],
    "bench ogb": ["bench", "ogb", "--dataset", "no-such-dataset"],
    "pipe": ["pipe", "--dataset", "no-such-dataset"],
    "temporal": ["temporal", "--dataset", "no-such-dataset"],
}


@pytest.mark.parametrize("name", sorted(TENSORBOARD_COMMANDS))
def test_tensorboard_dir_without_the_package_is_a_one_line_error(name, capsys, tmp_path, monkeypatch):
    from gnnscale.train.metrics import TENSORBOARD_MISSING

    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard now raises ImportError
    monkeypatch.chdir(tmp_path)
    argv = TENSORBOARD_COMMANDS[name] + ["--device", "cpu", "--tensorboard-dir", str(tmp_path / "tb")]
    assert main(argv) == 2
    assert capsys.readouterr().err == f"gnnscale {name}: error: --tensorboard-dir: {TENSORBOARD_MISSING}\n"
    assert list(tmp_path.iterdir()) == []  # nothing written, no rank started


def test_a_pipe_rank_refuses_tensorboard_dir_without_the_package_before_joining(capsys, monkeypatch, tmp_path):
    from gnnscale.programs.pipe import main as rank_main
    from gnnscale.train.metrics import TENSORBOARD_MISSING

    monkeypatch.setitem(sys.modules, "tensorboard", None)
    assert rank_main(["--dataset", "no-such-dataset", "--device", "cpu", "--tensorboard-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"gnnscale pipe: error: --tensorboard-dir: {TENSORBOARD_MISSING}\n"


def test_pipe_passes_tensorboard_dir_to_its_ranks():
    from gnnscale.programs.pipe import to_argv

    args = build_parser().parse_args(["pipe", "--tensorboard-dir", "runs/tb"])
    argv = to_argv(args)
    assert argv[argv.index("--tensorboard-dir") + 1] == "runs/tb"
    assert "--tensorboard-dir" not in to_argv(build_parser().parse_args(["pipe"]))

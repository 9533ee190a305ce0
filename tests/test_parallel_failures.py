"""Parallel runs that go wrong: a rank that stops answering, an interrupted or killed launcher, a
process group that outlives its rank's work, and result files our ranks did not write. Every
process a test starts carries a marker in its environment and is SIGKILLed at the end, so no test
leaves one running, and every wait has a deadline, so a hang fails the test instead of the suite."""
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from gnnscale.distributed.launch import _read_signed, _write_signed, resolve_timeout

from conftest import PROJECT, real_data_root

MARKER = "GNNSCALE_TEST_MARKER"
STARTUP_S = 300  # importing torch and loading Cora in several processes on a busy 2-core machine
TINY = ["--dataset", "cora", "--layers", "2", "--hidden", "8", "--chunks", "2", "--partitioner", "contiguous"]


# ---------------------------------------------------------------------- processes
def _marked(marker: str) -> dict:
    """pid -> environment entries of every live process carrying ``marker`` (a zombie has none)."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile
            continue
        if f"{MARKER}={marker}".encode() in environ:
            found[int(pid)] = environ
    return found


def _ranks(marker: str) -> dict:
    """rank -> pid of the rank processes: those with RANK in their environment."""
    return {int(entry[5:]): pid for pid, environ in _marked(marker).items()
            for entry in environ if entry.startswith(b"RANK=")}


def _agent(marker: str) -> int:
    for pid in _marked(marker):
        if b"torch.distributed.run" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return pid
    raise AssertionError("no torchrun agent is running")


def _wait_until(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds:g} s")
        time.sleep(0.1)


@contextmanager
def _started(command, tmp_path: Path, environment=None):
    """(process, marker, file of its output); afterwards every process with the marker is killed."""
    marker = uuid.uuid4().hex
    output = tmp_path / f"output-{marker}.txt"
    with open(output, "w") as sink:
        process = subprocess.Popen(command, cwd=PROJECT, stdout=sink, stderr=sink,
                                   env={**os.environ, **(environment or {}), MARKER: marker})
    try:
        yield process, marker, output
    finally:
        for pid in _marked(marker):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.kill()
        process.wait(timeout=30)


def _training(process, output: Path) -> bool:
    """True once rank 0's progress bar shows (an epoch has begun)."""
    assert process.poll() is None, output.read_text()[-3000:]
    return "epoch/s" in output.read_text()


def _pipe(out: Path, *options: str):
    return [sys.executable, "-m", "gnnscale", "pipe", "--nproc", "2", "--root", str(real_data_root()),
            "--out", str(out), *TINY, *options]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_environment(rank: int, world_size: int, port: int) -> dict:
    """What torchrun would set for one rank."""
    return {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world_size),
            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}


# ---------------------------------------------------------------------- a clean exit
# One rank's main(), then the threads left in its process: gloo's and the store's must be gone, or
# they are torn down during interpreter exit, which can abort the rank after its work is done.
RANK_THEN_THREADS = """
import os, sys
from gnnscale.programs.pipe import main
status = main(sys.argv[1:])
names = [open(f"/proc/self/task/{task}/comm").read().strip() for task in os.listdir("/proc/self/task")]
print("LEFT", status, sorted(name for name in names if "gloo" in name or "tcpstore" in name))
"""


def test_a_rank_destroys_its_process_group_before_exit(tmp_path):
    result = subprocess.run([sys.executable, "-c", RANK_THEN_THREADS, "--root", str(real_data_root()),
                             "--out", str(tmp_path), *TINY, "--mode", "pipeline", "--epochs", "1", "--quiet"],
                            cwd=PROJECT, env={**os.environ, **_rank_environment(0, 1, _free_port())},
                            capture_output=True, text=True, timeout=STARTUP_S)
    assert "LEFT 0 []" in result.stdout, result.stdout[-2000:] + result.stderr[-3000:]


@pytest.mark.slow  # ten torchrun jobs: about 4 minutes on 2 cores (`make test-slow`)
def test_pipe_exits_zero_every_run(tmp_path):
    """Ten short runs, two at a time: each writes its JSON and exits 0 (no SIGABRT at exit)."""
    failures = []
    for pair in range(5):
        runs = [subprocess.Popen(_pipe(tmp_path / f"{pair}-{i}", "--mode", "pipeline", "--epochs", "1", "--quiet"),
                                 cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for i in range(2)]
        for run in runs:
            try:
                _, err = run.communicate(timeout=STARTUP_S)
            finally:
                run.kill()
                run.wait()
            if run.returncode != 0 or "terminate called" in err:
                failures.append((run.returncode, err[-2000:]))
    assert not failures, failures
    assert len(list(tmp_path.glob("*/parallel_Cora_pipeline_2.json"))) == 10


# ---------------------------------------------------------------------- a rank that stops answering
def test_stopped_rank_is_named_within_the_timeout(tmp_path):
    """Two graph-parallel ranks (the halo exchange runs on a sub-group); rank 1 is stopped while
    training: rank 0 fails after the 3 s timeout, naming rank 1, instead of waiting 30 minutes."""
    timeout_s, margin_s = 3.0, 12.0
    command = [sys.executable, "-m", "gnnscale.programs.pipe", "--root", str(real_data_root()), "--out", str(tmp_path),
               *TINY, "--mode", "graph", "--epochs", "100000", "--timeout", str(timeout_s)]
    port = _free_port()
    with _started(command, tmp_path, _rank_environment(0, 2, port)) as (rank0, _, output):
        with _started(command, tmp_path, _rank_environment(1, 2, port)) as (rank1, _, _):
            _wait_until(lambda: _training(rank0, output), STARTUP_S, "training")
            rank1.send_signal(signal.SIGSTOP)
            stopped = time.monotonic()
            _wait_until(lambda: rank0.poll() is not None, timeout_s + margin_s, "rank 0 failing")
            elapsed = time.monotonic() - stopped
    message = output.read_text()
    assert rank0.returncode == 1, message[-3000:]
    assert "rank 0: rank 1 did not answer within 3 s" in message, message[-3000:]
    assert elapsed >= timeout_s - 0.5


def test_timeouts_are_checked(tmp_path):
    assert resolve_timeout(2.5) == 2.5
    with pytest.raises(ValueError, match="positive"):
        resolve_timeout(float("nan"))
    result = subprocess.run(_pipe(tmp_path, "--timeout", "0"), cwd=PROJECT, capture_output=True, text=True,
                            timeout=STARTUP_S)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "timeout must be a positive number of seconds, got 0.0" in result.stderr


# ---------------------------------------------------------------------- the launcher goes away
@pytest.mark.parametrize("how", ["SIGINT to gnnscale pipe", "SIGKILL to the torchrun agent"])
def test_no_rank_outlives_its_launcher(tmp_path, how):
    with _started(_pipe(tmp_path, "--mode", "pipeline", "--epochs", "100000"), tmp_path) as (pipe, marker, output):
        _wait_until(lambda: _training(pipe, output), STARTUP_S, "training")
        assert sorted(_ranks(marker)) == [0, 1]
        if how.startswith("SIGINT"):
            pipe.send_signal(signal.SIGINT)
        else:
            os.kill(_agent(marker), signal.SIGKILL)
        _wait_until(lambda: not _ranks(marker), 10, "every rank ending")
        status = pipe.wait(timeout=60)
    assert status == 128 + (signal.SIGINT if how.startswith("SIGINT") else signal.SIGKILL)


# ---------------------------------------------------------------------- results of spawned ranks
def test_spawned_results_are_read_only_with_their_signature(tmp_path):
    key = os.urandom(32)
    path = tmp_path / "rank0.pt"
    _write_signed(path, {"loss": torch.tensor([1.5])}, key)
    assert torch.equal(_read_signed(path, key)["loss"], torch.tensor([1.5]))
    with pytest.raises(ValueError, match="not signed by this spawn's ranks"):
        _read_signed(path, os.urandom(32))
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="not signed by this spawn's ranks"):
        _read_signed(path, key)

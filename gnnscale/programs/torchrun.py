"""Starting a program's ranks on this machine with torchrun, and passing the user's Ctrl-C or
SIGTERM on to them."""
import os
import signal
import subprocess
import sys
from typing import List


def run_torchrun(nproc: int, program: List[str]) -> int:
    """Runs ``torchrun --standalone --nproc-per-node nproc <program>`` under :func:`supervise`;
    each rank gets an equal share of the cores as its threads."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *program]
    environment = dict(os.environ)
    # torchrun would default to one thread per rank; share the cores out instead
    environment.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    return supervise(command, environment)


def supervise(command: List[str], environment: dict) -> int:
    """Runs torchrun in a session of its own and, on SIGINT or SIGTERM, sends it SIGTERM, which it
    passes on to its ranks: they end at once, even inside a blocking collective, where a Python
    KeyboardInterrupt would wait for the collective. A second signal kills torchrun outright (its
    ranks die with it). Returns its exit status, or 128 + the first signal received."""
    agent = subprocess.Popen(command, env=environment, start_new_session=True)
    received: List[int] = []

    def forward(signum, _frame):
        received.append(signum)
        try:
            os.killpg(agent.pid, signal.SIGTERM if len(received) == 1 else signal.SIGKILL)
        except ProcessLookupError:
            pass  # torchrun has just ended

    previous = {signum: signal.signal(signum, forward) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        status = agent.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received:
        return 128 + received[0]
    return status if status >= 0 else 128 - status

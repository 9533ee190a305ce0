"""``gnnscale env``: what this installation runs with: gnnscale's, torch's and Python's versions,
whether the compiled extension has CUDA kernels, the CUDA torch was built with, the visible GPUs,
the CPU threads, and the I/O engine the disk tier gets here (io_uring or pread)."""
import json
import os
import platform
import tempfile
import warnings
from typing import Any, Dict, List

# An operator with a CPU and a CUDA kernel: the extension has CUDA kernels when it was compiled in.
_PROBE_OPERATOR = "gnnscale::neighbor_sample"


def extension_has_cuda_kernels() -> bool:
    import torch

    from .. import ops  # noqa: F401  (registers the operators)

    return torch._C._dispatch_has_kernel_for_dispatch_key(_PROBE_OPERATOR, "CUDA")


def visible_gpus() -> List[Dict[str, Any]]:
    import torch

    if not torch.cuda.is_available():
        return []
    gpus = []
    for index in range(torch.cuda.device_count()):
        properties = torch.cuda.get_device_properties(index)
        gpus.append({"index": index, "name": properties.name, "memory_bytes": int(properties.total_memory)})
    return gpus


def disk_engine() -> Dict[str, Any]:
    """The engine a DiskTensor gets on a small file in the temporary folder, and why it fell back
    to another if it did."""
    import numpy as np

    from ..storage import DiskTensor

    with tempfile.TemporaryDirectory(prefix="gnnscale-env-") as folder:
        path = os.path.join(folder, "probe.npy")
        np.save(path, np.zeros((64, 16), dtype=np.float32))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the fallback is reported below
            table = DiskTensor(path)
        try:
            return {"engine": table.engine, "io_uring": table.engine == "io_uring",
                    "fallback": table.fallback or None, "folder": tempfile.gettempdir()}
        finally:
            table.close()


def environment() -> Dict[str, Any]:
    import torch

    from .. import __version__

    return {"gnnscale_version": __version__, "torch_version": torch.__version__,
            "python_version": platform.python_version(), "extension_cuda_kernels": extension_has_cuda_kernels(),
            "cuda": torch.cuda.is_available(), "torch_cuda_version": torch.version.cuda, "gpus": visible_gpus(),
            "threads": {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads(),
                        "parallel_info": torch.__config__.parallel_info()},
            "disk": disk_engine(), "cpu_count": os.cpu_count(), "platform": platform.platform()}


def lines(facts: Dict[str, Any]) -> List[str]:
    gpus = ", ".join(f"{gpu['index']}: {gpu['name']} ({gpu['memory_bytes'] / 2**30:.1f} GiB)" for gpu in facts["gpus"])
    disk = facts["disk"]
    rows = [("gnnscale", facts["gnnscale_version"]), ("torch", facts["torch_version"]),
            ("python", facts["python_version"]), ("platform", facts["platform"]),
            ("extension", "CPU and CUDA kernels" if facts["extension_cuda_kernels"] else "CPU kernels only"),
            ("torch CUDA", facts["torch_cuda_version"] or "none (a CPU-only build)"),
            ("GPUs", gpus or "none visible"),
            ("threads", f"{facts['threads']['intra_op']} intra-op, {facts['threads']['inter_op']} inter-op"),
            ("CPUs", str(facts["cpu_count"])),
            ("disk tier", disk["engine"] + (f" ({disk['fallback']})" if disk["fallback"] else ""))]
    width = max(len(key) for key, _ in rows)
    return [f"{key:<{width}}  {value}" for key, value in rows] + ["", facts["threads"]["parallel_info"].rstrip()]


def _env(args) -> int:
    facts = environment()
    print(json.dumps(facts, indent=2) if args.json else "\n".join(lines(facts)))
    return 0


def register(commands) -> None:
    parser = commands.add_parser("env", help="versions, CUDA, GPUs, threads and disk I/O engine of this installation",
                                 description=__doc__)
    parser.add_argument("--json", action="store_true", help="print the same as JSON")
    parser.set_defaults(run=_env)

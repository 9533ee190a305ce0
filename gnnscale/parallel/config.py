"""The options of parallel full-graph training: the grid of ranks, the chunks and the model. A
plain dataclass, so programs read its defaults without loading the engine."""
from dataclasses import dataclass
from typing import Optional

DTYPES = ("float32", "float64")
CONVS = ("gcn", "sage")
PARTITIONERS = ("metis", "contiguous")
PIPELINED_CHUNKS = 4  # chunks per epoch when stages > 1 and none are given
# The loop's and the optimiser's defaults for this training (tuned on Cora's 8-layer residual GCN),
# read by the task and by `gnnscale pipe`.
EPOCHS = 200
LEARNING_RATE = 0.005
WEIGHT_DECAY = 5e-4


@dataclass(frozen=True)
class ParallelConfig:
    """The grid and the model of parallel full-graph training. ``chunks`` None: 4 when the graph
    flows through pipeline stages, 1 (exact full-graph training) otherwise. ``warmup_epochs``:
    epochs run as one chunk before chunking, filling the history buffers. ``dtype`` float64
    checks the ranks against one process to rounding."""

    stages: int = 1
    partitions: int = 1
    chunks: Optional[int] = None
    num_layers: int = 8
    hidden: int = 64
    conv: str = "gcn"
    dropout: float = 0.6
    norm: bool = False
    warmup_epochs: int = 0
    partitioner: str = "metis"
    dtype: str = "float32"

    def __post_init__(self):
        for name in ("stages", "partitions", "num_layers", "hidden"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.chunks is not None and (isinstance(self.chunks, bool) or not isinstance(self.chunks, int)
                                        or self.chunks < 1):
            raise ValueError(f"chunks must be a positive int or None, got {self.chunks!r}")
        if self.stages > self.num_layers:
            raise ValueError(f"{self.stages} stages for {self.num_layers} layers: each stage needs a layer")
        if isinstance(self.warmup_epochs, bool) or not isinstance(self.warmup_epochs, int) or self.warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be a non-negative int, got {self.warmup_epochs!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        for name, allowed in (("conv", CONVS), ("partitioner", PARTITIONERS), ("dtype", DTYPES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")

    @property
    def num_chunks(self) -> int:
        if self.chunks is not None:
            return self.chunks
        return PIPELINED_CHUNKS if self.stages > 1 else 1

    def check(self, world_size: int) -> None:
        if self.stages * self.partitions != world_size:
            raise ValueError(f"stages x partitions = {self.stages} x {self.partitions} must equal the "
                             f"{world_size} ranks")

"""Full-graph node classification of a deep residual GNN spread over the ranks of a torchrun job:
graph partitions (halo exchange), pipeline stages over chunks of the graph (GNNPipe), or both.
The engine (:mod:`gnnscale.parallel.engine`) computes; this task gives it to the Trainer, which
runs the epochs, evaluation, logs and each rank's checkpoints."""
from typing import Any, Dict, Optional

import torch
from torch import nn

from ..datasets.base import NodeDataset
from ..parallel import config as parallel
from ..parallel.config import ParallelConfig
from ..parallel.engine import PipelineEngine
from ..parallel.layout import GraphLayout
from .config import LoopConfig, OptimizerConfig, make_config
from .node import check_node_dataset
from .trainer import Task


class ParallelFullGraphTask(Task):
    """One optimiser step per epoch over the whole graph, with the work shared by the ranks of the
    default process group, ``stages x partitions`` of them (one process: stages = partitions = 1):

        # torchrun --nproc-per-node 4 train.py
        task = ParallelFullGraphTask(dataset, stages=4)             # 4 pipeline stages, 4 chunks
        result = Trainer(task, epochs=200, checkpoint_dir="ckpt").fit()

    Options: :class:`~gnnscale.parallel.ParallelConfig` (grid, chunks, model). ``layout`` fixes
    the node order and the partition and chunk boundaries (default: partitioned on rank 0 and
    broadcast). The optimiser's ``grad_clip`` caps the norm of the whole model's gradient, every
    stage's share counted once. Every rank reports the same loss and metrics; each checkpoints its
    own stage, history buffers and dropout generators.
    """

    metric = "accuracy"
    unit = "seed nodes"
    data_parallel = False
    model_parallel = True
    default_loop = LoopConfig(epochs=parallel.EPOCHS)
    default_optimizer = OptimizerConfig(lr=parallel.LEARNING_RATE, weight_decay=parallel.WEIGHT_DECAY)

    def __init__(self, dataset: NodeDataset, *, config: Optional[ParallelConfig] = None,
                 layout: Optional[GraphLayout] = None, **options):
        check_node_dataset(dataset)
        self.config = make_config(ParallelConfig, config, options, "ParallelFullGraphTask")
        self.dataset, self.layout = dataset, layout
        config = self.config
        self.name = (f"{config.conv} x{config.num_layers} on {dataset.name} "
                     f"({config.stages} stages x {config.partitions} partitions)")

    def build(self, device: torch.device, seed: int) -> nn.Module:
        self.engine = PipelineEngine(self.dataset, self.config, device, seed, self.layout)
        return self.engine.stage_modules

    def settings(self) -> Dict[str, Any]:
        return self.engine.settings()

    def batches(self, epoch: int):
        return [epoch]  # the whole graph, once; the engine chunks it

    def num_batches(self) -> int:
        return 1

    def optimise(self, epoch, optimizer, grad_clip):
        return self.engine.train_epoch(epoch, optimizer, grad_clip), self.engine.num_train

    def evaluate(self) -> Dict[str, float]:
        return self.engine.evaluate()

    def state_dict(self) -> Dict[str, Any]:
        return self.engine.state_dict()

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.engine.load_state_dict(state)

    def traffic(self) -> Dict[str, Dict[str, int]]:
        """Bytes sent per training epoch and per evaluation, by kind, over all ranks (every rank
        calls this)."""
        return self.engine.traffic()

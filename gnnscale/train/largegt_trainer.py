"""Node classification with the LargeGT graph transformer, on the shared epoch loop."""
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import torch
from torch.nn import functional as F

from ..datasets.base import NodeDataset
from ..loader import TokenLoader
from ..loader.loaders import check_num_threads
from ..nn import LargeGT
from ..storage import TokenTable
from .loop import EpochTrainer, dataset_summary
from .node_trainer import check_node_dataset, split_accuracy


class LargeGTTrainer(EpochTrainer):
    """Trains :class:`~gnnscale.nn.LargeGT` on mini-batches of nodes and their tokens.

        trainer = LargeGTTrainer(dataset, num_tokens=100, epochs=50)
        result = trainer.fit()          # result.accuracy: train / valid / test at the best epoch

    The token table (``num_tokens`` token nodes per node, sampled within ``fanouts`` hops, each
    carrying ``hops + 1`` propagated features) is built once, or opened from ``cache_dir``, and
    evaluation reads it. Training draws fresh token nodes for its batches every ``resample_every``
    epochs (default: every epoch, as a neighbour sampler draws afresh for every batch; on the
    products-shaped benchmark graph fixed token nodes let the transformer memorise its training
    nodes; ``None`` keeps the table's). ``eval_rounds=K`` scores every node with K draws of its
    token nodes (the stored one and K-1 fresh ones) and averages the class probabilities: one
    draw of 100 is a noisy estimate of a node's neighbourhood, where GraphSAGE's layer-wise
    inference reads every neighbour. ``use_global=False`` drops the
    codebook module; ``positional`` (``[num_nodes, P]``) feeds it a positional encoding.
    ``dropout`` applies to the input features and the head, ``attention_dropout`` inside the
    transformer layer (noisy features want the first high, attention the second low).
    Evaluation, early stopping, checkpoints, logs and plots are those of every trainer.
    """

    def __init__(self, dataset: NodeDataset, *, num_tokens: int = 100, hops: int = 2,
                 fanouts: Sequence[int] = (20, 10), hidden: int = 128, heads: int = 4, layers: int = 1,
                 dropout: float = 0.1, attention_dropout: float = 0.1, use_global: bool = True,
                 num_centroids: int = 4096, positional: Optional[torch.Tensor] = None, lr: float = 1e-3,
                 weight_decay: float = 0.0,
                 batch_size: int = 256, epochs: int = 20, eval_every: int = 1, patience: Optional[int] = None,
                 eval_batch_size: int = 1024, resample_every: Optional[int] = 1, eval_rounds: int = 1,
                 cache_dir: Optional[Union[str, Path]] = None, seed: int = 0, device: str = "cpu",
                 num_threads: int = 1, checkpoint_dir: Optional[Union[str, Path]] = None, resume: bool = False,
                 log_path: Optional[Union[str, Path]] = None, plot_path: Optional[Union[str, Path]] = None,
                 progress: bool = True, precision: str = "fp32"):
        check_node_dataset(dataset)
        if resample_every is not None and resample_every < 1:
            raise ValueError(f"resample_every must be a positive number of epochs, got {resample_every}")
        if isinstance(eval_rounds, bool) or not isinstance(eval_rounds, int) or eval_rounds < 1:
            raise ValueError(f"eval_rounds must be a positive int, got {eval_rounds!r}")
        if positional is not None and (positional.dim() != 2 or positional.size(0) != dataset.graph.num_nodes):
            raise ValueError(f"positional must be [num_nodes={dataset.graph.num_nodes}, P], got {tuple(positional.shape)}")
        check_num_threads(num_threads)
        super().__init__(epochs=epochs, eval_every=eval_every, patience=patience, seed=seed, device=device,
                         checkpoint_dir=checkpoint_dir, resume=resume, log_path=log_path, plot_path=plot_path,
                         progress=progress, precision=precision)
        self.dataset = dataset
        self.resample_every = resample_every
        self.eval_batch_size, self.eval_rounds = eval_batch_size, eval_rounds
        self.table = TokenTable.build(dataset.graph, dataset.features, num_tokens=num_tokens, hops=hops,
                                      fanouts=fanouts, seed=seed, cache_dir=cache_dir, progress=progress)
        self.positional = None if positional is None else positional.float().to(self.device)
        self.model = self.modules = LargeGT(
            dataset.num_features, hidden, dataset.num_classes, hops=hops, heads=heads, layers=layers, dropout=dropout,
            attention_dropout=attention_dropout, use_global=use_global, num_centroids=num_centroids,
            positional_dim=0 if positional is None else positional.size(1)).to(self.device)
        self.name = f"largegt on {dataset.name}"
        self.run_settings = {
            "dataset": dataset_summary(dataset), "num_tokens": num_tokens, "hops": hops, "fanouts": list(fanouts),
            "heads": heads, "dropout": dropout, "attention_dropout": attention_dropout, "batch_size": batch_size,
            "resample_every": resample_every, "eval_rounds": eval_rounds}
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=lr, weight_decay=weight_decay)
        self.loader = TokenLoader(self.table, dataset.splits["train"], batch_size, labels=dataset.labels, seed=seed,
                                  num_threads=num_threads, device=self.device)

    def _sampling_round(self, epoch: int) -> int:
        return 0 if self.resample_every is None else (epoch - 1) // self.resample_every

    def _forward(self, batch) -> torch.Tensor:
        positional = None if self.positional is None else self.positional[batch.nodes]
        return self.model(batch.tokens.float(), batch.mask, positional)

    def _train_epoch(self, epoch: int):
        self.loader.round = self._sampling_round(epoch)  # a function of the epoch: resumable
        self.model.train()
        self.loader.epoch = epoch - 1
        total_loss, total_nodes = 0.0, 0
        for b, batch in enumerate(self.loader, start=1):
            self.optimizer.zero_grad()
            with self.autocast():
                logits = self._forward(batch)
            loss = F.cross_entropy(logits.float(), batch.y)
            loss.backward()
            self.optimizer.step()
            total_loss += self.loss_value(loss, epoch, b, len(self.loader)) * batch.batch_size
            total_nodes += batch.batch_size
        return total_loss / total_nodes, total_nodes

    @torch.no_grad()
    def inference(self) -> torch.Tensor:
        """Log class probabilities of every node, averaged over ``eval_rounds`` token draws."""
        self.model.eval()
        loader = TokenLoader(self.table, torch.arange(self.dataset.graph.num_nodes), self.eval_batch_size, shuffle=False,
                             device=self.device)
        probabilities = 0.0
        for draw in range(self.eval_rounds):
            loader.round = draw
            probabilities = probabilities + torch.cat([self._forward(batch).float().softmax(1).cpu() for batch in loader])
        return (probabilities / self.eval_rounds).log()

    def evaluate(self) -> Dict[str, float]:
        return split_accuracy(self.inference(), self.dataset.labels, self.dataset.splits, self.dataset.name)

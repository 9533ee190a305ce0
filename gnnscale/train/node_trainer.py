"""Mini-batch node classification: sampled neighbourhoods for training, layer-wise inference over
the full neighbourhoods of every node for evaluation (as PyG's and DGL's examples do)."""
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import torch
from torch.nn import functional as F

from ..datasets.base import NodeDataset
from ..loader import NodeLoader
from ..loader.loaders import check_num_threads
from ..nn import GNNEncoder
from ..storage import UnifiedTensor
from .inference import layerwise_inference
from .loop import EpochTrainer, dataset_summary


def check_node_dataset(dataset: NodeDataset) -> None:
    """Node classification needs features, single-label classes and three non-empty splits."""
    if dataset.features is None or dataset.labels is None or dataset.multilabel:
        raise ValueError(f"{dataset.name}: node classification needs features and single-label classes")
    for split in ("train", "valid", "test"):
        if split not in dataset.splits or dataset.splits[split].numel() == 0:
            raise ValueError(f"{dataset.name}: the {split!r} split is empty")


@torch.no_grad()
def split_accuracy(logits: torch.Tensor, labels: torch.Tensor, splits: Dict[str, torch.Tensor],
                   dataset_name: str = "") -> Dict[str, float]:
    """Accuracy of the arg-max prediction on each split's nodes; OGB datasets are scored by ogb's
    own ``Evaluator`` so figures compare with the leaderboards."""
    predicted = logits.argmax(dim=-1)
    if dataset_name.startswith("ogbn-"):
        from ogb.nodeproppred import Evaluator

        evaluator = Evaluator(dataset_name)
        return {name: float(evaluator.eval({"y_true": labels[index].view(-1, 1).cpu(),
                                            "y_pred": predicted[index].view(-1, 1).cpu()})["acc"])
                for name, index in splits.items()}
    return {name: float((predicted[index] == labels[index]).double().mean()) for name, index in splits.items()}


class NodeTrainer(EpochTrainer):
    """Trains a GNN encoder on sampled mini-batches.

        trainer = NodeTrainer(dataset, "sage", fanouts=[15, 10, 5], batch_size=1024, epochs=20)
        result = trainer.fit()          # result.accuracy: train / valid / test at the best epoch

    Evaluation runs every ``eval_every`` epochs; training stops after ``patience`` evaluations
    without a better validation accuracy. With ``checkpoint_dir`` the state after every epoch is
    saved atomically, and ``resume=True`` continues from it, ending where an uninterrupted run with
    the same seed ends. ``log_path`` receives one JSON line per epoch; ``plot_path`` a PNG.

    On ``device="cuda"`` the features stay in host memory, pinned in place, and the GPU reads each
    batch's rows directly (zero-copy); ``sample_on_device=True`` samples on the GPU as well.
    """

    def __init__(self, dataset: NodeDataset, model: Union[str, GNNEncoder] = "sage", *,
                 fanouts: Sequence[int] = (15, 10, 5), batch_size: int = 1024, hidden: int = 256,
                 dropout: float = 0.5, lr: float = 0.003, weight_decay: float = 0.0, epochs: int = 20,
                 eval_every: int = 1, patience: Optional[int] = None, eval_batch_size: int = 4096,
                 seed: int = 0, device: str = "cpu", num_threads: int = 1, sample_on_device: bool = False,
                 checkpoint_dir: Optional[Union[str, Path]] = None, resume: bool = False,
                 log_path: Optional[Union[str, Path]] = None, plot_path: Optional[Union[str, Path]] = None,
                 progress: bool = True, precision: str = "fp32"):
        check_node_dataset(dataset)
        check_num_threads(num_threads)
        super().__init__(epochs=epochs, eval_every=eval_every, patience=patience, seed=seed, device=device,
                         checkpoint_dir=checkpoint_dir, resume=resume, log_path=log_path, plot_path=plot_path,
                         progress=progress, precision=precision)
        self.dataset = dataset
        self.eval_batch_size = eval_batch_size
        if isinstance(model, str):
            model = GNNEncoder(model, dataset.num_features, hidden, dataset.num_classes, len(fanouts), dropout)
        elif model.num_layers != len(fanouts):
            raise ValueError(f"the model has {model.num_layers} layers but fanouts has {len(fanouts)} entries")
        self.model = self.modules = model.to(self.device)
        self.name = f"{model.kind} on {dataset.name}"
        self.run_settings = {"dataset": dataset_summary(dataset), "kind": model.kind, "fanouts": list(fanouts),
                             "batch_size": batch_size, "dropout": model.dropout}
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr, weight_decay=weight_decay)
        self.features = UnifiedTensor(dataset.features)
        if self.device.type == "cuda":
            self.features.pin_()
        self.loader = NodeLoader(dataset.graph, self.features, dataset.splits["train"], list(fanouts), batch_size,
                                 labels=dataset.labels, seed=seed, num_threads=num_threads, device=self.device,
                                 sample_on_device=sample_on_device)

    def _train_epoch(self, epoch: int):
        self.model.train()
        self.loader.epoch = epoch - 1  # batches depend on (seed, epoch, batch) only: resumable
        total_loss, total_seeds = 0.0, 0
        for b, batch in enumerate(self.loader, start=1):
            sub = batch.subgraph
            self.optimizer.zero_grad()
            with self.autocast():
                out = self.model(batch.x.float(), sub.edge_index, sub.num_sampled_nodes, sub.num_sampled_edges)
            loss = F.cross_entropy(out[:batch.batch_size].float(), batch.y)
            loss.backward()
            self.optimizer.step()
            total_loss += self.loss_value(loss, epoch, b, len(self.loader)) * batch.batch_size
            total_seeds += batch.batch_size
        return total_loss / total_seeds, total_seeds

    def inference(self) -> torch.Tensor:
        """Logits of every node from layer-wise full-neighbourhood inference."""
        return layerwise_inference(self.model, self.dataset.graph, self.features, self.eval_batch_size, self.device)

    def evaluate(self) -> Dict[str, float]:
        return split_accuracy(self.inference(), self.dataset.labels, self.dataset.splits, self.dataset.name)

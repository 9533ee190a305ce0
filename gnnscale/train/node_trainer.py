"""Mini-batch node classification: sampled neighbourhoods for training, layer-wise inference over
the full neighbourhoods of every node for evaluation (as PyG's and DGL's examples do)."""
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from ..datasets.base import NodeDataset
from ..loader import NodeLoader
from ..nn import GNNEncoder
from ..sampling import NeighborSampler
from ..storage import UnifiedTensor
from .checkpoint import load_checkpoint, restore_rng_state, rng_state, save_checkpoint
from .metrics import MetricsLog, plot_history

CHECKPOINT_FILE = "last.pt"


@dataclass
class TrainResult:
    best_epoch: int
    accuracy: Dict[str, float]  # at the best validation epoch
    history: List[Dict[str, float]] = field(default_factory=list)
    seconds_per_epoch: float = 0.0
    seeds_per_second: float = 0.0


class NodeTrainer:
    """Trains a GNN encoder on sampled mini-batches.

        trainer = NodeTrainer(dataset, "sage", fanouts=[15, 10, 5], batch_size=1024, epochs=20)
        result = trainer.fit()          # result.accuracy: train / valid / test at the best epoch

    Evaluation runs every ``eval_every`` epochs; training stops after ``patience`` evaluations
    without a better validation accuracy. With ``checkpoint_dir`` the state after every epoch is
    saved atomically, and ``resume=True`` continues from it, ending where an uninterrupted run with
    the same seed ends. ``log_path`` receives one JSON line per epoch; ``plot_path`` a PNG.
    """

    def __init__(self, dataset: NodeDataset, model: Union[str, GNNEncoder] = "sage", *,
                 fanouts: Sequence[int] = (15, 10, 5), batch_size: int = 1024, hidden: int = 256,
                 dropout: float = 0.5, lr: float = 0.003, weight_decay: float = 0.0, epochs: int = 20,
                 eval_every: int = 1, patience: Optional[int] = None, eval_batch_size: int = 4096,
                 seed: int = 0, device: str = "cpu", num_threads: int = 1,
                 checkpoint_dir: Optional[Union[str, Path]] = None, resume: bool = False,
                 log_path: Optional[Union[str, Path]] = None, plot_path: Optional[Union[str, Path]] = None,
                 progress: bool = True):
        if dataset.features is None or dataset.labels is None or dataset.multilabel:
            raise ValueError(f"{dataset.name}: node classification needs features and single-label classes")
        for split in ("train", "valid", "test"):
            if split not in dataset.splits or dataset.splits[split].numel() == 0:
                raise ValueError(f"{dataset.name}: the {split!r} split is empty")
        if epochs < 1 or eval_every < 1:
            raise ValueError("epochs and eval_every must be at least 1")
        if resume and checkpoint_dir is None:
            raise ValueError("resume=True needs a checkpoint_dir")
        self.dataset = dataset
        self.device = torch.device(device)
        self.epochs, self.eval_every, self.patience = epochs, eval_every, patience
        self.eval_batch_size = eval_batch_size
        self.seed = seed
        self.progress = progress
        self.checkpoint_path = Path(checkpoint_dir) / CHECKPOINT_FILE if checkpoint_dir else None
        self.resume = resume
        self.log_path, self.plot_path = log_path, plot_path
        torch.manual_seed(seed)
        if isinstance(model, str):
            model = GNNEncoder(model, dataset.num_features, hidden, dataset.num_classes, len(fanouts), dropout)
        elif model.num_layers != len(fanouts):
            raise ValueError(f"the model has {model.num_layers} layers but fanouts has {len(fanouts)} entries")
        self.model = model.to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr, weight_decay=weight_decay)
        self.features = UnifiedTensor(dataset.features)
        self.loader = NodeLoader(dataset.graph, self.features, dataset.splits["train"], list(fanouts), batch_size,
                                 labels=dataset.labels, seed=seed, num_threads=num_threads, device=self.device)

    # ------------------------------------------------------------------ training
    def fit(self) -> TrainResult:
        state = {"epoch": 0, "best": {"valid": -1.0}, "best_epoch": 0, "best_model": None, "history": [],
                 "evaluations_since_best": 0, "train_seconds": 0.0, "seeds": 0}
        if self.resume:
            state = self._restore(state)
        log = MetricsLog(self.log_path, append=self.resume and state["epoch"] > 0)
        bar = tqdm(range(state["epoch"] + 1, self.epochs + 1), desc=f"{self.model.kind} on {self.dataset.name}",
                   disable=not self.progress, initial=state["epoch"], total=self.epochs)
        for epoch in bar:
            loss, seconds, seeds = self._train_epoch(epoch)
            state["train_seconds"] += seconds
            state["seeds"] += seeds
            row = {"epoch": epoch, "loss": loss, "seconds": seconds, "seeds_per_second": seeds / seconds}
            if epoch % self.eval_every == 0 or epoch == self.epochs:
                accuracy = self.evaluate()
                row.update(accuracy)
                if accuracy["valid"] > state["best"]["valid"]:
                    state.update(best=accuracy, best_epoch=epoch, evaluations_since_best=0,
                                 best_model={k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()})
                else:
                    state["evaluations_since_best"] += 1
            state["history"].append(row)
            log.log(row)
            bar.set_postfix(loss=f"{loss:.3f}", valid=f"{row.get('valid', float('nan')):.3f}",
                            seeds_per_s=f"{row['seeds_per_second']:.0f}")
            state["epoch"] = epoch
            self._save(state)
            if self.patience is not None and state["evaluations_since_best"] >= self.patience:
                break
        if self.plot_path is not None:
            plot_history(state["history"], self.plot_path, f"{self.model.kind} on {self.dataset.name}")
        if state["best_model"] is not None:
            self.model.load_state_dict(state["best_model"])
        epochs_run = max(len(state["history"]), 1)
        return TrainResult(state["best_epoch"], state["best"], state["history"], state["train_seconds"] / epochs_run,
                           state["seeds"] / max(state["train_seconds"], 1e-9))

    def _train_epoch(self, epoch: int):
        self.model.train()
        self.loader.epoch = epoch - 1  # batches depend on (seed, epoch, batch) only: resumable
        total_loss, total_seeds = 0.0, 0
        start = time.perf_counter()
        for batch in self.loader:
            sub = batch.subgraph
            self.optimizer.zero_grad()
            out = self.model(batch.x.float(), sub.edge_index, sub.num_sampled_nodes, sub.num_sampled_edges)
            loss = F.cross_entropy(out[:batch.batch_size], batch.y)
            loss.backward()
            self.optimizer.step()
            total_loss += loss.item() * batch.batch_size
            total_seeds += batch.batch_size
        return total_loss / total_seeds, time.perf_counter() - start, total_seeds

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def inference(self) -> torch.Tensor:
        """Logits of every node, computed layer by layer over full neighbourhoods, in batches of
        ``eval_batch_size`` nodes, so memory holds one layer's activations at a time."""
        self.model.eval()
        graph = self.dataset.graph
        one_hop = NeighborSampler(graph, [-1])
        h = self.features
        all_nodes = torch.arange(graph.num_nodes)
        for i in range(self.model.num_layers):
            outputs = []
            for start in range(0, graph.num_nodes, self.eval_batch_size):
                sample = one_hop.sample(all_nodes[start:start + self.eval_batch_size], seed=0)
                x = h.gather(sample.node, device=self.device).float() if isinstance(h, UnifiedTensor) \
                    else h[sample.node].to(self.device)
                out = self.model.layer(i, x, sample.edge_index.to(self.device))
                outputs.append(out[:sample.batch_size].cpu())
            h = torch.cat(outputs)
        return h

    def evaluate(self) -> Dict[str, float]:
        predicted = self.inference().argmax(dim=-1)
        labels = self.dataset.labels
        return {split: float((predicted[index] == labels[index]).float().mean())
                for split, index in self.dataset.splits.items()}

    # ------------------------------------------------------------------ checkpoints
    def _save(self, state) -> None:
        if self.checkpoint_path is None:
            return
        save_checkpoint(self.checkpoint_path, {"state": state, "model": self.model.state_dict(),
                                               "optimizer": self.optimizer.state_dict(), "rng": rng_state()})

    def _restore(self, state):
        checkpoint = load_checkpoint(self.checkpoint_path)
        if checkpoint is None:
            return state  # nothing to resume: start fresh
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        restore_rng_state(checkpoint["rng"])
        return checkpoint["state"]

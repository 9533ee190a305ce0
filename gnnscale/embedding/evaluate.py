"""Evaluating node embeddings as the DeepWalk / node2vec / GraphVite papers do.

Node classification: one-vs-rest logistic regression (scikit-learn, liblinear solver) trained on
a random share of the labelled nodes; each test node is given its k most probable labels, k being
its true number of labels; micro- and macro-F1 averaged over several random splits. The inverse
regularisation strength C is 1 (the DeepWalk protocol) or, with ``C="cv"``, chosen per split by
3-fold cross-validation on the training nodes alone, which makes the score independent of the
embedding's scale (a fixed C favours whichever method happens to emit the larger vectors).
Link prediction: ROC-AUC of the dot product of the two endpoints' embeddings, held-out edges
against as many uniformly drawn node pairs that are not edges.
"""
import sys
from typing import Dict, List, Sequence, Tuple, Union

import numpy as np
import torch
from tqdm.auto import tqdm

DEFAULT_RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
CV_FOLDS = 3


def classifier_name(C: Union[float, str] = 1.0) -> str:
    strength = (f"C chosen from {list(C_GRID)} by {CV_FOLDS}-fold cross-validation on the training nodes"
                if C == "cv" else f"C={C:g}")
    return f"one-vs-rest logistic regression (scikit-learn, liblinear, {strength}), top-k labels per node"


def _top_k_predictions(scores: np.ndarray, label_counts: np.ndarray) -> np.ndarray:
    predicted = np.zeros_like(scores, dtype=bool)
    order = np.argsort(-scores, axis=1)
    for row, k in enumerate(label_counts):
        predicted[row, order[row, :k]] = True
    return predicted


def check_regularisation(C) -> None:
    if C != "cv" and not (isinstance(C, (int, float)) and not isinstance(C, bool) and C > 0):
        raise ValueError(f"C must be a positive number or 'cv', got {C!r}")


def check_repeats(repeats: int) -> None:
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")


def check_ratios(ratios: Sequence[float]) -> List[float]:
    """The training ratios as floats, each strictly between 0 and 1."""
    ratios = list(ratios)
    if not ratios:
        raise ValueError("give at least one training ratio")
    for ratio in ratios:
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float, np.floating)) or not 0 < ratio < 1:
            raise ValueError(f"training ratios must lie strictly between 0 and 1, got {ratio!r}")
    return [float(ratio) for ratio in ratios]


def _check_splits_non_empty(ratios: Sequence[float], num_nodes: int) -> None:
    for ratio in ratios:
        cut = int(round(ratio * num_nodes))
        if not 0 < cut < num_nodes:
            raise ValueError(f"ratio {ratio} of {num_nodes} labelled nodes leaves no training or no test nodes")


def _fit_and_score(x_train, y_train, x_test, y_test, C: float) -> Tuple[float, float]:
    """Micro- and macro-F1 on the test nodes of a classifier fitted on the training nodes."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.multiclass import OneVsRestClassifier

    present = y_train.any(axis=0)  # labels never seen in training cannot be learned
    classifier = OneVsRestClassifier(LogisticRegression(solver="liblinear", C=C))
    classifier.fit(x_train, y_train[:, present])
    scores = np.full((x_test.shape[0], y_test.shape[1]), -np.inf)
    scores[:, present] = classifier.predict_proba(x_test)
    predicted = _top_k_predictions(scores, y_test.sum(axis=1))
    return (f1_score(y_test, predicted, average="micro", zero_division=0),
            f1_score(y_test, predicted, average="macro", zero_division=0))


def _cross_validated_c(x, y, rng) -> float:
    """The grid's C with the best mean micro-F1 over folds of the training nodes (ties: smaller C)."""
    folds = np.array_split(rng.permutation(x.shape[0]), CV_FOLDS)
    best_c, best = C_GRID[0], -1.0
    splits = [(np.concatenate(folds[:f] + folds[f + 1:]), fold) for f, fold in enumerate(folds)]
    for C in C_GRID:
        micro = np.mean([_fit_and_score(x[train], y[train], x[held], y[held], C)[0] for train, held in splits])
        if micro > best:
            best_c, best = C, micro
    return best_c


def node_classification(vertex: torch.Tensor, labels: torch.Tensor, *, ratios: Sequence[float] = DEFAULT_RATIOS,
                        repeats: int = 5, seed: int = 0, normalize: bool = False,
                        C: Union[float, str] = 1.0, progress: bool = True) -> Dict[float, Dict[str, float]]:
    """Micro- and macro-F1 at each training ratio, mean (and std) over ``repeats`` random splits.

    ``labels``: [num_nodes, num_labels] 0/1 (multi-label) or [num_nodes] class ids. Nodes without
    a label are left out. ``normalize`` scales each embedding to unit length first. ``C``: the
    classifier's inverse regularisation strength, or ``"cv"`` to choose it per split from
    ``C_GRID`` by cross-validation on the training nodes (the chosen values are reported).
    ``progress``: a progress bar over the splits (ratios x repeats), on stderr.
    """
    check_regularisation(C)
    check_repeats(repeats)
    ratios = check_ratios(ratios)
    x = vertex.detach().float().cpu().numpy()
    y = labels.cpu().numpy()
    if y.ndim == 1:
        y = np.eye(int(y.max()) + 1, dtype=bool)[y]
    y = y.astype(bool)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{x.shape[0]} embeddings for {y.shape[0]} labelled nodes")
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        raise ValueError(f"embeddings have NaN or infinite values in row {int(np.flatnonzero(~finite)[0])}")
    if normalize:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    keep = y.any(axis=1)
    x, y = x[keep], y[keep]
    _check_splits_non_empty(ratios, x.shape[0])
    rng = np.random.default_rng(seed)
    results = {}
    bar = tqdm(total=len(ratios) * repeats, desc=f"node classification ({y.shape[1]} labels)", unit="split",
               disable=not progress, file=sys.stderr)
    for ratio in ratios:
        micro, macro, chosen = [], [], []
        bar.set_postfix(ratio=f"{ratio:g}")
        for _ in range(repeats):
            order = rng.permutation(x.shape[0])
            cut = int(round(ratio * x.shape[0]))
            train, test = order[:cut], order[cut:]
            strength = _cross_validated_c(x[train], y[train], rng) if C == "cv" else float(C)
            split_micro, split_macro = _fit_and_score(x[train], y[train], x[test], y[test], strength)
            micro.append(split_micro)
            macro.append(split_macro)
            chosen.append(strength)
            bar.update()
        results[ratio] = {"micro_f1": float(np.mean(micro)), "micro_f1_std": float(np.std(micro)),
                          "macro_f1": float(np.mean(macro)), "macro_f1_std": float(np.std(macro)), "C": chosen}
    bar.close()
    return results


def link_prediction_auc(vertex: torch.Tensor, held_out: torch.Tensor, existing: torch.Tensor, *,
                        seed: int = 0) -> float:
    """ROC-AUC of ``vertex[u] · vertex[v]``: ``held_out`` edges [E, 2] against as many random node
    pairs that are in neither ``held_out`` nor ``existing`` ([E', 2], the training graph's edges)."""
    from sklearn.metrics import roc_auc_score

    num_nodes = vertex.size(0)
    if held_out.numel() == 0:
        raise ValueError("no held-out edges to evaluate")
    known = set((held_out[:, 0] * num_nodes + held_out[:, 1]).tolist())
    known |= set((existing[:, 0] * num_nodes + existing[:, 1]).tolist())
    gen = torch.Generator().manual_seed(seed)
    negatives = []
    while len(negatives) < held_out.size(0):
        pairs = torch.randint(0, num_nodes, (2 * held_out.size(0), 2), generator=gen)
        for u, v in pairs.tolist():
            if u != v and u * num_nodes + v not in known and v * num_nodes + u not in known:
                negatives.append((u, v))
                if len(negatives) == held_out.size(0):
                    break
    negatives = torch.tensor(negatives)
    pos = (vertex[held_out[:, 0]] * vertex[held_out[:, 1]]).sum(1)
    neg = (vertex[negatives[:, 0]] * vertex[negatives[:, 1]]).sum(1)
    truth = np.concatenate([np.ones(pos.numel()), np.zeros(neg.numel())])
    return float(roc_auc_score(truth, torch.cat([pos, neg]).numpy()))

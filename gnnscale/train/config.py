"""The typed options of training, each with its one default: the loop (epochs, evaluation, early
stopping, checkpoints, logs), the optimiser, and per task the sampling and model options. The
Python API, ``gnnscale bench ogb`` and the other commands all read their defaults from here."""
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Type, TypeVar, Union

PRECISIONS = ("fp32", "bf16")
OPTIMIZERS = ("adam", "adamw")

Config = TypeVar("Config")


def _positive(name: str, value, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


@dataclass(frozen=True)
class LoopConfig:
    """How long to train and what to keep. Evaluation runs every ``eval_every`` epochs and after
    the last; training stops after ``patience`` evaluations without a better validation metric.
    With ``checkpoint_dir`` the state after every epoch is saved atomically, and ``resume=True``
    continues from it, ending where an uninterrupted run with the same seed ends. ``log_path``
    receives one JSON line per epoch, ``plot_path`` a PNG of loss and metrics, ``tensorboard_dir``
    TensorBoard scalars of loss, metrics and times per epoch (needs the tensorboard package). With data-parallel
    ranks, a wait on another rank fails after ``dist_timeout`` seconds, naming the rank that
    stopped (None: $GNNSCALE_DIST_TIMEOUT, else 60)."""

    epochs: int = 20
    eval_every: int = 1
    patience: Optional[int] = None
    seed: int = 0
    precision: str = "fp32"
    checkpoint_dir: Optional[Union[str, Path]] = None
    resume: bool = False
    log_path: Optional[Union[str, Path]] = None
    plot_path: Optional[Union[str, Path]] = None
    tensorboard_dir: Optional[Union[str, Path]] = None
    progress: bool = True
    dist_timeout: Optional[float] = None

    def __post_init__(self):
        _positive("epochs", self.epochs)
        if self.dist_timeout is not None and not (isinstance(self.dist_timeout, (int, float)) and
                                                  0 < self.dist_timeout < float("inf")):
            raise ValueError(f"dist_timeout must be a positive number of seconds, got {self.dist_timeout!r}")
        _positive("eval_every", self.eval_every)
        _positive("patience", self.patience, allow_none=True)
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {self.precision!r}")
        if self.resume and self.checkpoint_dir is None:
            raise ValueError("resume=True needs a checkpoint_dir")


@dataclass(frozen=True)
class OptimizerConfig:
    """The optimiser (``adam`` or ``adamw``) and its step: learning rate, weight decay, and
    ``grad_clip``, a cap on the gradient norm of each of the task's parameter groups per step."""

    name: str = "adam"
    lr: float = 0.003
    weight_decay: float = 0.0
    grad_clip: Optional[float] = None

    def __post_init__(self):
        if self.name not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, not {self.name!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be non-negative, got {self.weight_decay}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be positive, got {self.grad_clip}")


def _fanouts(fanouts: Sequence[int]) -> Tuple[int, ...]:
    fanouts = tuple(fanouts)
    if not fanouts or any(isinstance(f, bool) or not isinstance(f, int) or f == 0 or f < -1 for f in fanouts):
        raise ValueError(f"fanouts must be a non-empty list of positive ints or -1 (all neighbours), got {fanouts}")
    return fanouts


def _check_batching(config) -> None:
    """The fanouts (as a tuple) and batch sizes that every sampled task's config has."""
    object.__setattr__(config, "fanouts", _fanouts(config.fanouts))
    _positive("batch_size", config.batch_size)
    _positive("eval_batch_size", config.eval_batch_size)


def _finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value \
        and abs(value) != float("inf")


def _check_feature_tiers(config) -> None:
    """Where the features are read from (``host_cache_gib``) and how large a table of one layer's
    outputs evaluation keeps in memory (``inference_memory_gib``)."""
    if config.host_cache_gib is not None and not (_finite_number(config.host_cache_gib) and
                                                  config.host_cache_gib >= 0):
        raise ValueError(f"host_cache_gib must be a number of GiB >= 0 (0: no host cache) or None (features "
                         f"in memory), got {config.host_cache_gib!r}")
    if not (_finite_number(config.inference_memory_gib) and config.inference_memory_gib > 0):
        raise ValueError(f"inference_memory_gib must be a positive number of GiB, got {config.inference_memory_gib!r}")


# Large enough that evaluation keeps every layer in memory on all but the largest graphs.
DEFAULT_INFERENCE_MEMORY_GIB = 32.0


@dataclass(frozen=True)
class NodeConfig:
    """Node classification on sampled neighbourhoods: ``fanouts`` neighbours per layer (one layer
    per entry), ``batch_size`` seed nodes per step, the encoder's width and dropout (for a model
    given by name), ``eval_batch_size`` nodes per step of layer-wise evaluation, loader threads
    (None: one, or none where a rank has a single core), and ``sample_on_device`` (sample on the
    GPU too).

    ``host_cache_gib``: read the features from the dataset's feature file through the disk tier
    (:class:`~gnnscale.storage.DiskTensor`) with a host row cache of that many GiB (per process:
    each data-parallel rank has its own), instead of from the table in memory (None).
    ``inference_memory_gib``: the largest table of one layer's outputs layer-wise evaluation keeps
    in memory; a larger one goes to a temporary file and is read back through the disk tier."""

    fanouts: Tuple[int, ...] = (15, 10, 5)
    batch_size: int = 1024
    hidden: int = 256
    dropout: float = 0.5
    eval_batch_size: int = 4096
    num_threads: Optional[int] = None
    sample_on_device: bool = False
    host_cache_gib: Optional[float] = None
    inference_memory_gib: float = DEFAULT_INFERENCE_MEMORY_GIB

    def __post_init__(self):
        _check_batching(self)
        _check_feature_tiers(self)


@dataclass(frozen=True)
class PartitionedNodeConfig:
    """Node classification over a dataset split into parts, one rank per part: ``fanouts``,
    per-rank ``batch_size``, the encoder's ``hidden`` width and ``dropout``, ``eval_batch_size``
    as in :class:`NodeConfig`; ``cache_gib``: each rank's cache of remote feature rows, filled by
    ``cache_policy``: "presampling" (the remote nodes a few sampled batches of its training nodes
    reach most) or "references" (the halo nodes its part's edges reach most); ``verify``: check
    the part's sha256 checksums on opening."""

    fanouts: Tuple[int, ...] = (15, 10, 5)
    batch_size: int = 1024
    hidden: int = 256
    dropout: float = 0.5
    eval_batch_size: int = 4096
    cache_gib: float = 0.0
    cache_policy: str = "presampling"
    verify: bool = True

    def __post_init__(self):
        _check_batching(self)
        if self.cache_policy not in ("presampling", "references"):
            raise ValueError(f"cache_policy must be 'presampling' or 'references', got {self.cache_policy!r}")
        if not (_finite_number(self.cache_gib) and self.cache_gib >= 0):
            raise ValueError(f"cache_gib must be a number of GiB >= 0, got {self.cache_gib!r}")


@dataclass(frozen=True)
class LinkConfig:
    """Link prediction. ``fanouts`` gives one neighbour count per layer and trains on sampled
    neighbourhoods of each batch's endpoints; ``full_graph=True`` instead encodes the whole graph
    with full neighbourhoods at every step (``num_layers`` layers, ``len(fanouts)`` by default), as
    OGB's full-batch examples do: the choice for small dense graphs such as ogbl-ddi, where a sample
    of 20 out of ~500 neighbours loses the signal. ``batch_size`` seed edges per step, each with
    ``num_negatives`` negatives drawn by ``negative`` ('uniform' or 'degree'); ``corrupt``: 'target'
    keeps the positive's source, 'both' draws random pairs (OGB's examples). ``predictor_layers``:
    the MLP edge decoder's depth. ``host_cache_gib`` and ``inference_memory_gib``: as
    :class:`NodeConfig`'s (sampled training only: ``full_graph`` holds every feature row on the
    device)."""

    fanouts: Tuple[int, ...] = (10, 10)
    full_graph: bool = False
    num_layers: Optional[int] = None
    batch_size: int = 16384
    hidden: int = 256
    dropout: float = 0.5
    predictor_layers: int = 3
    num_negatives: int = 1
    negative: str = "uniform"
    corrupt: str = "target"
    eval_batch_size: int = 8192
    num_threads: Optional[int] = None
    host_cache_gib: Optional[float] = None
    inference_memory_gib: float = DEFAULT_INFERENCE_MEMORY_GIB

    def __post_init__(self):
        _check_batching(self)
        _check_feature_tiers(self)
        if self.full_graph and self.host_cache_gib is not None:
            raise ValueError("host_cache_gib reads features through the disk tier in sampled training; full_graph=True "
                             "holds every feature row on the device, so leave host_cache_gib unset")
        _positive("predictor_layers", self.predictor_layers)
        _positive("num_layers", self.num_layers, allow_none=True)
        if self.corrupt not in ("target", "both"):
            raise ValueError(f"corrupt must be one of ('target', 'both'), got {self.corrupt!r}")
        if self.negative not in ("uniform", "degree"):
            raise ValueError(f"negative must be 'uniform' or 'degree', not {self.negative!r}")
        if self.num_layers is not None and not self.full_graph:
            raise ValueError("num_layers applies to full_graph=True; sampled training has one layer per fanout")


@dataclass(frozen=True)
class LargeGTConfig:
    """LargeGT: ``num_tokens`` token nodes per node, sampled within ``fanouts`` hops (``hops``: the
    propagated features each token carries, ``hops + 1`` of them), the transformer's width, heads,
    layers and dropouts (``dropout`` on the input features and the head, ``attention_dropout``
    inside attention), the global codebook (``use_global``, ``num_centroids``). Training draws fresh
    token nodes every ``resample_every`` epochs (None keeps the table's); ``eval_rounds=K`` averages
    the class probabilities of K token draws at evaluation. ``cache_dir`` keeps the token table
    between runs."""

    num_tokens: int = 100
    hops: int = 2
    fanouts: Tuple[int, ...] = (20, 10)
    hidden: int = 128
    heads: int = 4
    layers: int = 1
    dropout: float = 0.1
    attention_dropout: float = 0.1
    use_global: bool = True
    num_centroids: int = 4096
    batch_size: int = 256
    eval_batch_size: int = 1024
    resample_every: Optional[int] = 1
    eval_rounds: int = 1
    cache_dir: Optional[Union[str, Path]] = None
    num_threads: Optional[int] = None

    def __post_init__(self):
        _check_batching(self)
        _positive("num_tokens", self.num_tokens)
        _positive("resample_every", self.resample_every, allow_none=True)
        _positive("eval_rounds", self.eval_rounds)


@dataclass(frozen=True)
class FullGraphConfig:
    """Node classification with one step per epoch on the whole graph (graphs whose activations
    fit in memory): the encoder's width, depth and dropout."""

    hidden: int = 128
    num_layers: int = 2
    dropout: float = 0.5

    def __post_init__(self):
        _positive("num_layers", self.num_layers)


def field_names(config_type: Type) -> Tuple[str, ...]:
    return tuple(field.name for field in dataclasses.fields(config_type))


def defaults_of(config_type: Type) -> Dict[str, Any]:
    """The default of every option of a config type."""
    return {field.name: field.default for field in dataclasses.fields(config_type)}


def make_config(config_type: Type[Config], config: Optional[Config], options: Dict[str, Any],
                owner: str) -> Config:
    """``config``, or one built from keyword ``options`` (not both); an unknown option is refused
    with the ones ``owner`` knows."""
    if config is not None:
        if options:
            raise ValueError(f"{owner}: pass either a {config_type.__name__} or keyword options, not both")
        if not isinstance(config, config_type):
            raise ValueError(f"{owner}: config must be a {config_type.__name__}, got {type(config).__name__}")
        return config
    unknown = sorted(set(options) - set(field_names(config_type)))
    if unknown:
        raise ValueError(f"{owner}: unknown option(s) {', '.join(unknown)}; "
                         f"the options are {', '.join(field_names(config_type))}")
    return config_type(**options)


def split_options(options: Dict[str, Any], task_config: Type) -> Tuple[Dict, Dict, Dict]:
    """Flat options (as the command line gives them) sorted into loop, optimiser and task options;
    an option none of them knows is refused. ``optimizer`` names the optimiser."""
    loop, optimizer, task, unknown = {}, {}, {}, []
    for name, value in options.items():
        if name in field_names(LoopConfig):
            loop[name] = value
        elif name == "optimizer":
            optimizer["name"] = value
        elif name in field_names(OptimizerConfig) and name != "name":
            optimizer[name] = value
        elif name in field_names(task_config):
            task[name] = value
        else:
            unknown.append(name)
    if unknown:
        raise ValueError(f"{', '.join(sorted(unknown))}: not an option of {task_config.__name__}, the optimiser "
                         f"or the training loop")
    return loop, optimizer, task


# The demo job (``gnnscale demo``): a small GraphSAGE that trains in about a minute on a CPU.
DEMO_TASK = NodeConfig(fanouts=(10, 5), batch_size=256, hidden=128)
DEMO_OPTIMIZER = OptimizerConfig(lr=0.005)
DEMO_LOOP = LoopConfig(epochs=15, eval_every=5)


@dataclass(frozen=True)
class TemporalConfig:
    """Temporal link prediction on an event stream: ``batch_size`` events per step (in time
    order), ``new_node_fraction`` of the nodes of validation and test held out of training (the
    inductive setting), ``mrr_negatives`` extra negatives per test event for MRR (0: none),
    ``eval_batch_size`` events per evaluation step (the training batch size by default: the size
    changes the scores, as memory is updated per batch), and ``state_device``, where memory and
    mailbox live (the model's device by default). The model's own options (memory_dim,
    num_neighbors, aggregator, pres, ...) are those of ``gnnscale.nn.TemporalModelConfig``."""

    batch_size: int = 200
    new_node_fraction: float = 0.1
    mrr_negatives: int = 0
    eval_batch_size: Optional[int] = None
    state_device: Optional[str] = None

    def __post_init__(self):
        _positive("batch_size", self.batch_size)
        _positive("eval_batch_size", self.eval_batch_size, allow_none=True)
        if not 0.0 <= self.new_node_fraction < 1.0:
            raise ValueError(f"new_node_fraction must be in [0, 1), got {self.new_node_fraction}")
        if isinstance(self.mrr_negatives, bool) or not isinstance(self.mrr_negatives, int) or self.mrr_negatives < 0:
            raise ValueError(f"mrr_negatives must be an int >= 0, got {self.mrr_negatives!r}")

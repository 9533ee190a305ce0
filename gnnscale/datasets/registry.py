"""``load_dataset``: one entry point from a name (or a file path) to a dataset object."""
from pathlib import Path
from typing import Optional, Union

from .base import LinkDataset, NodeDataset, PathLike, TemporalDataset, data_root
from .edge_list import edge_list_graph
from .ogb_reader import is_ogb_name, load_ogb
from .planetoid import PLANETOID_NAMES, load_planetoid
from .saved import is_saved_dataset, open_dataset
from .synthetic import PRESETS, generate_preset, generate_synthetic


def load_mat(path: PathLike, name: str = None) -> NodeDataset:
    from .matlab import load_mat as read  # scipy's readers load when a .mat file is read

    return read(path, name=name)


def load_jodie(path: PathLike, name: str = None) -> TemporalDataset:
    from .jodie import load_jodie as read  # pandas loads when an event file is read

    return read(path, name=name)


# Named datasets that live at a fixed place under the data root.
FILE_DATASETS = {
    "blogcatalog": ("blogcatalog/blogcatalog.mat", load_mat),
    "wikipedia": ("jodie_wikipedia/wikipedia.csv", load_jodie),
}

Dataset = Union[NodeDataset, LinkDataset, TemporalDataset]


def known_datasets():
    """Names ``load_dataset`` accepts (besides file paths and any ``ogbn-*``/``ogbl-*`` under the root)."""
    return sorted(
        list(PLANETOID_NAMES) + list(FILE_DATASETS) + ["synthetic"] + [f"synthetic-{p}" for p in PRESETS]
    )


def load_dataset(name: str, root: Optional[PathLike] = None, **kwargs) -> Dataset:
    """Loads a dataset by name, or from a file.

    - ``cora``, ``citeseer``, ``pubmed``: Planetoid public split (``planetoid/<Name>/raw``).
    - ``ogbn-*``, ``ogbl-*``: through ogb's dataset classes from ``<root>/<ogbn_name>`` (no download).
    - ``blogcatalog`` (``.mat``), ``wikipedia`` (JODIE events).
    - ``synthetic-arxiv``, ``synthetic-products``, ``synthetic-papers100M`` (keyword ``scale``,
      ``seed``) and ``synthetic`` (keywords of :func:`generate_synthetic`).
    - a folder written by :func:`~gnnscale.datasets.save_dataset` or, for datasets larger than
      memory, :func:`~gnnscale.datasets.prepare_dataset` (``gnnscale prepare``), opened
      memory-mapped (one copy in memory however many processes open it);
    - a path to a ``.mat`` file, a JODIE ``.csv`` event file, or an edge list (other suffixes).

    The root is ``root``, else ``$GNNSCALE_DATA``, else ``datasets/`` in the project.
    """
    key = name.lower()
    if key.startswith("synthetic-"):
        preset = {p.lower(): p for p in PRESETS}.get(key[len("synthetic-"):])
        if preset is None:
            raise ValueError(f"unknown synthetic preset {name!r}; choose from {[f'synthetic-{p}' for p in PRESETS]}")
        return generate_preset(preset, **kwargs)
    if key == "synthetic":
        return generate_synthetic(**kwargs)
    _no_options(name, kwargs)
    base = data_root(root)
    if key in PLANETOID_NAMES:
        return load_planetoid(key, base)
    if is_ogb_name(key):
        return load_ogb(key, base)
    if key in FILE_DATASETS:
        relative, reader = FILE_DATASETS[key]
        return reader(base / relative, name=key)
    path = Path(name)
    if is_saved_dataset(path):
        return open_dataset(path)
    if path.is_file():
        return load_file(path)
    raise ValueError(
        f"unknown dataset {name!r}: not a file, and not one of {known_datasets()} or an ogbn-*/ogbl-* name"
    )


def load_file(path: PathLike) -> Dataset:
    """Reads a dataset file by its suffix: .mat, JODIE .csv, else an undirected edge list (the
    graph of :func:`~gnnscale.datasets.edge_list.edge_list_graph`: no self-loops, no repeated
    edges, as every command that reads an edge list sees it)."""
    path = Path(path)
    if path.suffix == ".mat":
        return load_mat(path)
    if path.suffix == ".csv" and _looks_like_jodie(path):
        return load_jodie(path)
    return NodeDataset(name=path.stem, graph=edge_list_graph(path), features=None, labels=None)


def is_edge_list_file(path: PathLike) -> bool:
    """Whether :func:`load_file` reads ``path`` as an edge list: a file, not .mat nor a JODIE csv."""
    path = Path(path)
    return path.is_file() and path.suffix != ".mat" and not (path.suffix == ".csv" and _looks_like_jodie(path))


def _looks_like_jodie(path: Path) -> bool:
    with open(path, "r", encoding="utf-8", errors="replace") as handle:
        header = handle.readline().strip().lower().split(",")
    return len(header) >= 4 and header[:3] in (["u", "i", "ts"], ["user_id", "item_id", "timestamp"])


def _no_options(name, kwargs):
    if kwargs:
        raise ValueError(f"dataset {name!r} takes no options, got {sorted(kwargs)}")

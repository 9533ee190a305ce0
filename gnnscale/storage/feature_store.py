"""PyG's ``FeatureStore`` over UnifiedTensors: PyG loaders fetch node features through
gnnscale's gather, and gnnscale's loaders accept the same store."""
from typing import Dict, List, Optional, Set, Tuple

import torch
from torch_geometric.data import FeatureStore as PyGFeatureStore
from torch_geometric.data import TensorAttr

from .unified import UnifiedTensor

Key = Tuple[Optional[str], str]


class FeatureStore(PyGFeatureStore):
    """Tables by ``(group_name, attr_name)`` (PyG uses ``group_name=None`` for homogeneous graphs),
    each a :class:`UnifiedTensor`; ``store[None, 'x', index]`` gathers rows with the C++ kernel.

        store = FeatureStore()
        store.put_tensor(features, group_name=None, attr_name="x", index=None)
        NodeLoader(data=(store, graph_store), node_sampler=..., input_nodes=...)  # PyG's loader
    """

    def __init__(self):
        super().__init__()
        self._tables: Dict[Key, UnifiedTensor] = {}
        # UnifiedTensor keeps rows 2-D; a table put in 1-D (labels) is handed back 1-D.
        self._one_dimensional: Set[Key] = set()

    @staticmethod
    def _key(attr: TensorAttr) -> Key:
        return (attr.group_name, attr.attr_name)

    def table(self, group_name: Optional[str], attr_name: str) -> UnifiedTensor:
        key = (group_name, attr_name)
        if key not in self._tables:
            raise KeyError(f"no tensor {attr_name!r} in group {group_name!r}")
        return self._tables[key]

    def _put_tensor(self, tensor, attr: TensorAttr) -> bool:
        if attr.is_set("index") and attr.index is not None:
            raise ValueError("FeatureStore stores whole tables; put the full tensor (index=None)")
        key = self._key(attr)
        self._tables[key] = tensor if isinstance(tensor, UnifiedTensor) else UnifiedTensor(tensor)
        self._one_dimensional.discard(key)
        if not isinstance(tensor, UnifiedTensor) and torch.as_tensor(tensor).dim() == 1:
            self._one_dimensional.add(key)
        return True

    def _get_tensor(self, attr: TensorAttr) -> Optional[torch.Tensor]:
        table = self._tables.get(self._key(attr))
        if table is None:
            return None
        rows = self._rows(table, attr)
        return rows.reshape(-1) if self._key(attr) in self._one_dimensional else rows

    @staticmethod
    def _rows(table: UnifiedTensor, attr: TensorAttr) -> torch.Tensor:
        if not attr.is_set("index") or attr.index is None:
            return table.data
        index = attr.index
        if isinstance(index, slice):
            return table.data[index]
        return table.gather(torch.as_tensor(index).reshape(-1), device="cpu")

    def _remove_tensor(self, attr: TensorAttr) -> bool:
        self._one_dimensional.discard(self._key(attr))
        return self._tables.pop(self._key(attr), None) is not None

    def _get_tensor_size(self, attr: TensorAttr) -> Optional[Tuple[int, ...]]:
        table = self._tables.get(self._key(attr))
        if table is None:
            return None
        return (table.shape[0],) if self._key(attr) in self._one_dimensional else tuple(table.shape)

    def get_all_tensor_attrs(self) -> List[TensorAttr]:
        return [TensorAttr(group_name=group, attr_name=name) for group, name in self._tables]

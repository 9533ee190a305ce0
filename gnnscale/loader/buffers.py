"""Host output buffers that a loader reuses once no batch it handed out refers to them.

A fresh tensor for every batch's features is memory the kernel maps anew: the gather then pays a
page fault for every 4 KiB it writes, which costs about as much as the gather's own reads (a
table of 100 MiB is 25,600 faults). A buffer is reused only when the ring holds the last
reference to its storage, so a batch kept by the caller (in a list, or through a view of its
features) is never written over.
"""
import threading
from typing import List, Optional

import torch

# The number of references to a storage (tensors and views using it, Python handles to it).
_storage_use_count = getattr(torch._C, "_storage_Use_Count", None)


class BufferRing:
    """Up to ``capacity`` host storages, handed out again as ``[rows, width]`` tensors once free."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._storages: List[torch.UntypedStorage] = []
        self._lock = threading.Lock()  # loader threads take buffers concurrently
        self.reused = 0

    def empty(self, rows: int, width: int, dtype: torch.dtype) -> torch.Tensor:
        """An uninitialised ``[rows, width]`` tensor, in a storage that nothing else uses."""
        nbytes = rows * width * torch.empty(0, dtype=dtype).element_size()
        if _storage_use_count is None or self.capacity == 0:
            return torch.empty((rows, width), dtype=dtype)
        with self._lock:  # the tensor is made under the lock: from then on its storage is in use
            storage = self._free_storage(nbytes)
            if storage is None:
                # Some slack, so that the next batches, which sample a few more nodes, fit too.
                storage = torch.UntypedStorage(max(nbytes + nbytes // 8, 1))
                self._keep(storage)
            else:
                self.reused += 1
            return torch.empty(0, dtype=dtype).set_(storage, 0, (rows, width), (width, 1))

    def _is_free(self, storage: torch.UntypedStorage) -> bool:
        return _storage_use_count(storage._cdata) == 1  # the ring's own handle only

    def _free_storage(self, nbytes: int) -> Optional[torch.UntypedStorage]:
        """The smallest free storage that holds ``nbytes``."""
        fitting = [s for s in self._storages if s.nbytes() >= nbytes and self._is_free(s)]
        return min(fitting, key=lambda s: s.nbytes()) if fitting else None

    def _keep(self, storage: torch.UntypedStorage) -> None:
        if len(self._storages) < self.capacity:
            self._storages.append(storage)
            return
        free = [i for i, s in enumerate(self._storages) if self._is_free(s)]
        if free:  # a free storage too small for today's batches makes room
            smallest = min(free, key=lambda i: self._storages[i].nbytes())
            self._storages[smallest] = storage

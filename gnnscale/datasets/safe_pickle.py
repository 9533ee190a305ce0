"""Reading pickles that gnnscale did not write: Planetoid's raw files and ogb's split files.

What a pickle may build here: numpy arrays of a plain numeric or boolean dtype (no objects, no
fields, no sub-arrays), scipy CSR matrices (Planetoid only), dicts, ``defaultdict(list)``, lists,
tuples, sets, strings, bytes and numbers. Any other name a pickle asks for is refused.

Checking what comes out of an unpickler is too late. numpy rebuilds a dtype and an array from the
state the pickle gives (flags, fields, sizes, raw bytes) and trusts it: a crafted dtype state
makes numpy take raw bytes from the file for object pointers, and merely iterating such an array,
as the unpickler itself may be told to, dereferences them. A CSR matrix's pickled state goes into
its ``__dict__``, where it can shadow the matrix's own methods (``check_format`` included). So the
names ``numpy.dtype``, ``numpy.ndarray``, numpy's ``_reconstruct`` and scipy's ``csr_matrix`` stand
here for classes that check their state first and only then build the real object from it: a
dtype from its type code and byte order alone, an array from exactly the bytes its shape needs,
a CSR matrix anew from its three arrays, checked in full by scipy.

``torch_safe_globals()`` gives the numpy part to torch's own safe loader (``weights_only``), which
calls ``__setstate__`` of the classes it is given; ``restricted_load`` reads Planetoid's files.
"""
import collections
import math
import pickle

import numpy as np

_PLAIN_KINDS = "biuf"


class RefusedPickle(pickle.UnpicklingError):
    """The pickle asks for something these files never hold."""


def _plain_dtype(spec) -> np.dtype:
    if not isinstance(spec, str):
        raise RefusedPickle(f"a numpy dtype described by a {type(spec).__name__}")
    dtype = np.dtype(spec)
    if dtype.kind not in _PLAIN_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise RefusedPickle(f"a numpy {dtype} dtype (only plain numeric and boolean ones are read)")
    return dtype


class NumericDtype:
    """What ``numpy.dtype(spec, align, copy)`` in a pickle makes: a plain numeric or boolean dtype,
    given its byte order by the pickled state, which must describe nothing else."""

    def __init__(self, spec, align=False, copy=True):
        self.dtype = _plain_dtype(spec)
        self._stateless = True

    def __setstate__(self, state):
        if not self.__dict__.pop("_stateless", False):
            raise RefusedPickle("a second state for one numpy dtype")
        # numpy's dtype state: (version, byte order, subarray, names, fields, item size, alignment, flags)
        plain = (3, None, None, None, -1, -1, 0)  # all but the byte order
        if not (isinstance(state, tuple) and len(state) == 8 and _exactly(state[:1] + state[2:], plain)):
            raise RefusedPickle(f"a numpy dtype state {_short(state)} that is not one of a plain {self.dtype} dtype")
        byte_order = state[1]
        if type(byte_order) is not str or byte_order not in ("<", ">", "=", "|") or (
                byte_order == "|" and self.dtype.itemsize != 1):
            raise RefusedPickle(f"byte order {_short(byte_order)} for a numpy {self.dtype} dtype")
        if byte_order in ("<", ">"):
            self.dtype = self.dtype.newbyteorder(byte_order)
        if self.dtype != np.dtype(self.dtype.str):
            raise RefusedPickle(f"a numpy dtype state {_short(state)}")


class CheckedArray(np.ndarray):
    """A numpy array whose pickled state (shape, dtype, raw bytes) is checked before numpy sees it.
    Only made empty by ``reconstruct``, as numpy's pickles do, and given one state."""

    def __new__(cls, *args, **kwargs):
        raise RefusedPickle("a numpy array made other than the way numpy pickles arrays")

    def __setstate__(self, state):
        if not self.__dict__.pop("_stateless", False):
            raise RefusedPickle("a second state for one numpy array")
        # numpy's array state: (version, shape, dtype, Fortran order, raw bytes)
        if not (isinstance(state, tuple) and len(state) == 5 and _exactly(state[:1], (1,))):
            raise RefusedPickle(f"a numpy array state {_short(state)}")
        _, shape, dtype, fortran_order, raw = state
        if not isinstance(dtype, NumericDtype):
            raise RefusedPickle(f"a numpy array of {_short(dtype)} (only plain numeric and boolean dtypes are read)")
        if not (isinstance(shape, tuple) and all(type(size) is int and size >= 0 for size in shape)):
            raise RefusedPickle(f"a numpy array of shape {_short(shape)}")
        if isinstance(raw, str):  # Python 2 pickles read with encoding="latin1"
            raw = raw.encode("latin1")
        expected = math.prod(shape) * dtype.dtype.itemsize
        if type(raw) is not bytes or len(raw) != expected:
            raise RefusedPickle(f"a numpy array of shape {shape} and dtype {dtype.dtype} whose data is not "
                                f"{expected} bytes")
        if type(fortran_order) not in (bool, int):
            raise RefusedPickle(f"a numpy array whose memory order is {_short(fortran_order)}")
        np.ndarray.__setstate__(self, (1, shape, dtype.dtype, bool(fortran_order), raw))


class _ClassName:
    """What a class's name stands for when the pickle may only pass it to one of the functions here."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self):
        return self.name


NDARRAY = _ClassName("numpy.ndarray")
LIST = _ClassName("list")


def reconstruct(subtype, shape, typecode):
    """numpy's ``_reconstruct(ndarray, (0,), b'b')``: the empty array a pickled state then fills."""
    if subtype is not NDARRAY:
        raise RefusedPickle(f"a numpy array of class {_short(subtype)}")
    array = np.ndarray.__new__(CheckedArray, (0,), np.int8)
    array._stateless = True
    return array


class CsrMatrixState:
    """Holds the CSR matrix a pickle describes, rebuilt from its three arrays and checked by scipy."""

    _REQUIRED = {"data", "indices", "indptr", "_shape"}
    _IGNORED = {"format", "maxprint", "_has_sorted_indices", "_has_canonical_format",
                "_cs_matrix__has_sorted_indices", "_cs_matrix__has_canonical_format"}

    matrix = None  # pickles make the instance without calling __init__ (the NEWOBJ opcode)

    def __setstate__(self, state):
        if not isinstance(state, dict) or not self._REQUIRED <= state.keys() <= self._REQUIRED | self._IGNORED:
            keys = sorted(map(str, state)) if isinstance(state, dict) else _short(state)
            raise RefusedPickle(f"a CSR matrix state with keys {keys} (expected {sorted(self._REQUIRED)})")
        if self.matrix is not None:
            raise RefusedPickle("a second state for one CSR matrix")
        arrays = {key: state[key] for key in ("data", "indices", "indptr")}
        for key, array in arrays.items():
            kinds = _PLAIN_KINDS if key == "data" else "iu"
            if type(array) is not CheckedArray or array.ndim != 1 or array.dtype.kind not in kinds:
                raise RefusedPickle(f"a CSR matrix whose {key} is {_short(array)}")
        shape = state["_shape"]
        if not (isinstance(shape, tuple) and len(shape) == 2 and all(type(n) is int and n >= 0 for n in shape)):
            raise RefusedPickle(f"a CSR matrix of shape {_short(shape)}")
        # Copies, so that nothing else in the pickle refers to the arrays the matrix holds.
        data, indices, indptr = (np.array(arrays[key]) for key in ("data", "indices", "indptr"))
        try:
            import scipy.sparse as sp  # loaded when a pickle holds a matrix

            matrix = sp.csr_matrix((data, indices, indptr), shape=shape)
            sp.csr_matrix.check_format(matrix, full_check=True)  # scipy's kernels trust indptr and indices
        except (ValueError, TypeError) as error:
            raise RefusedPickle(f"a malformed CSR matrix ({error})") from None
        self.matrix = matrix


def _list_defaultdict(*args):
    if len(args) != 1 or args[0] is not LIST:
        raise RefusedPickle("a defaultdict whose default is not list")
    return collections.defaultdict(list)


def _exactly(values, expected: tuple) -> bool:
    """``values == expected``, element by element and of the same types (no numpy comparisons)."""
    return (isinstance(values, tuple) and len(values) == len(expected)
            and all(type(a) is type(b) and a == b for a, b in zip(values, expected)))


def _short(value) -> str:
    plain = isinstance(value, (type(None), bool, int, float, str, tuple, _ClassName))
    text = repr(value) if plain else type(value).__name__
    return text if len(text) <= 80 else text[:77] + "..."


# numpy 2 renamed numpy.core to numpy._core; pickles name either.
_NUMPY_NAMES = {
    "numpy.ndarray": NDARRAY,
    "numpy.dtype": NumericDtype,
    "numpy.core.multiarray._reconstruct": reconstruct,
    "numpy._core.multiarray._reconstruct": reconstruct,
}

# Planetoid's files as Python 2 wrote them (old numpy and scipy), and as newer versions would.
_PLANETOID_NAMES = {
    **_NUMPY_NAMES,
    "scipy.sparse.csr.csr_matrix": CsrMatrixState,
    "scipy.sparse._csr.csr_matrix": CsrMatrixState,
    "scipy.sparse.csr_matrix": CsrMatrixState,
    "collections.defaultdict": _list_defaultdict,
    "__builtin__.list": LIST,
    "builtins.list": LIST,
}

_TAKES_STATE = (NumericDtype, CheckedArray, CsrMatrixState)


def torch_safe_globals() -> list:
    """For ``torch.serialization.safe_globals``: numpy arrays read through the checks above."""
    own = [(cls, f"{__name__}.{cls.__name__}") for cls in (CheckedArray, NumericDtype)]
    return [(obj, name) for name, obj in _NUMPY_NAMES.items()] + own


class _RestrictedUnpickler(pickle._Unpickler):
    """The pure-Python unpickler, so that its opcodes can be intercepted: names resolve only to the
    stand-ins above, and only those take a state (the BUILD opcode)."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def find_class(self, module, name):
        allowed = _PLANETOID_NAMES.get(f"{module}.{name}")
        if allowed is None:
            raise RefusedPickle(f"{module}.{name}")
        return allowed

    def load_build(self):
        target = self.stack[-2]
        if type(target) not in _TAKES_STATE:
            raise RefusedPickle(f"a state for a {type(target).__name__}")
        target.__setstate__(self.stack.pop())

    dispatch[pickle.BUILD[0]] = load_build

    def persistent_load(self, pid):
        raise RefusedPickle("a persistent id")


def restricted_load(handle):
    """The object pickled in ``handle`` (Python 2's strings read as latin-1), a CSR matrix as scipy's own type."""
    loaded = _RestrictedUnpickler(handle, encoding="latin1").load()
    if isinstance(loaded, CsrMatrixState):
        if loaded.matrix is None:
            raise RefusedPickle("a CSR matrix without its arrays")
        return loaded.matrix
    return loaded

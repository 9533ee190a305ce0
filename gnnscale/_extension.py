"""Loads the compiled operators, with a message that says how to build them when they are missing."""
import importlib

_BUILD_HINT = (
    "gnnscale's C++ extension (gnnscale._C) is not built. From the project root run `make install` "
    "(or `pip install --no-build-isolation -e .` inside an environment that has torch)."
)


def load():
    try:
        return importlib.import_module("gnnscale._C")
    except ImportError as error:
        raise ImportError(f"{_BUILD_HINT} (import failed: {error})") from error

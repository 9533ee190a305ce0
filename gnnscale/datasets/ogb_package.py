"""ogb, imported without its release check.

At import, ogb starts a thread that asks PyPI whether a newer ogb exists (through the `outdated`
package when it is installed). That is a network call on every run, from a library that is meant to
read local files only, and the thread is not a daemon: with no network the interpreter waits for
it before it can exit. ogb skips the check when `outdated` cannot be imported, so gnnscale hides
that package while ogb is first imported."""
import importlib
import sys

_ABSENT = object()


def import_ogb(submodule: str = ""):
    """``ogb`` (or ``ogb.<submodule>``), imported without starting ogb's release check."""
    if "ogb" not in sys.modules:
        previous = sys.modules.get("outdated", _ABSENT)
        sys.modules["outdated"] = None  # makes `from outdated import ...` raise ImportError
        try:
            importlib.import_module("ogb")
        finally:
            if previous is _ABSENT:
                del sys.modules["outdated"]
            else:
                sys.modules["outdated"] = previous
    return importlib.import_module(f"ogb.{submodule}" if submodule else "ogb")

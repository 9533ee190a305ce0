"""Writing a file so that readers see the old content or the new, never a half-written file."""
import os
import uuid
from pathlib import Path
from typing import IO, Callable


def write_atomically(path, write: Callable[[IO], None], *, mode: str = "wb") -> Path:
    """Calls ``write(stream)`` on a temporary file beside ``path``, flushes it to disk, then renames
    it over ``path``; on failure the temporary file is removed and ``path`` is left untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique name opened with "x" (not mkstemp, whose 0600 mode would outlive the rename), so
    # the file gets the permissions any other new file would.
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temporary, mode.replace("w", "x"), **({} if "b" in mode else {"newline": ""})) as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return path

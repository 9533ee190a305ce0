"""Writing a file or a folder so that readers see the old content or the new, never a half-written one."""
import contextlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import IO, Callable, Iterator, List, Sequence, Tuple


def write_atomically(path, write: Callable[[IO], None], *, mode: str = "wb") -> Path:
    """Calls ``write(stream)`` on a temporary file beside ``path``, flushes it to disk, then renames
    it over ``path``; on failure the temporary file is removed and ``path`` is left untouched."""
    return write_files_together([(path, write, mode)])[0]


def write_files_together(files: Sequence[Tuple[object, Callable[[IO], None], str]], *,
                         remove: Sequence = ()) -> List[Path]:
    """Writes several files as one output: each ``(path, write, mode)`` goes to a temporary file
    beside its path, and only when every one is written and flushed to disk are they renamed into
    place, in the order given (so the file a reader opens first belongs last), after deleting the
    stale files named in ``remove``. A failure while writing leaves every path as it was."""
    temporaries: List[Path] = []
    try:
        for path, write, mode in files:
            temporaries.append(_flushed_temporary(Path(path), write, mode))
        for stale in remove:
            Path(stale).unlink(missing_ok=True)
        for temporary, (path, _, _) in zip(temporaries, files):
            os.replace(temporary, path)
    except BaseException:
        for temporary in temporaries:
            temporary.unlink(missing_ok=True)
        raise
    return [Path(path) for path, _, _ in files]


def _flushed_temporary(path: Path, write: Callable[[IO], None], mode: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique name opened with "x" (not mkstemp, whose 0600 mode would outlive the rename), so
    # the file gets the permissions any other new file would.
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temporary, mode.replace("w", "x"), **({} if "b" in mode else {"newline": ""})) as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary


@contextlib.contextmanager
def directory_written_atomically(target) -> Iterator[Path]:
    """Yields an empty staging folder beside ``target``; when the block ends without an error the
    folder replaces ``target`` (an existing one is kept until the new one is in place), otherwise it
    is removed and ``target`` is left untouched."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and not target.is_dir():
        raise ValueError(f"{target} exists and is not a directory")
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield staging
        if target.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            os.replace(target, retired / target.name)
            os.replace(staging, target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

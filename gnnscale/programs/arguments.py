"""Argument types several programs share: each turns a flag's text into a value or says what is
wrong with it (argparse prints the message and exits with status 2)."""
import argparse
from typing import Any, Callable, Dict, List, Optional


def fanouts(text: str) -> List[int]:
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"fanouts must be comma-separated integers, got {text!r}") from None
    if not values or any(f == 0 or f < -1 for f in values):
        raise argparse.ArgumentTypeError(f"each fanout must be positive or -1 (all neighbours), got {text!r}")
    return values


def thread_count(text: str) -> int:
    try:
        threads = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"threads must be an integer, got {text!r}") from None
    if threads < 0:
        raise argparse.ArgumentTypeError(f"threads must be 0 (batches prepared in the training thread) or more, "
                                         f"got {threads}")
    return threads


def gibibytes(text: str) -> float:
    """A size in GiB: a finite number, 0 or more (fractions allowed)."""
    try:
        size = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a size in GiB must be a number, got {text!r}") from None
    if not 0 <= size < float("inf"):
        raise argparse.ArgumentTypeError(f"a size in GiB must be a finite number >= 0, got {text!r}")
    return size


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default, unless the default is None (the help says what
    applies then) or the help already states it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is None or "%(default)" in text:
            return text
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """The parser of the ``gnnscale`` command and, through ``add_subparsers``, of each of its
    commands: the help of each shows the defaults."""

    def __init__(self, *args, shown_defaults: Optional[Callable[[], Dict[str, Any]]] = None, **kwargs):
        """``shown_defaults``: for options whose parser default is None because the library decides
        (a config file or a dataclass), a function giving their defaults by destination; it runs
        only when the help is printed, so the library is imported only then."""
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        self._shown_defaults = shown_defaults

    def format_help(self) -> str:
        if self._shown_defaults is not None:
            values, self._shown_defaults = self._shown_defaults(), None
            for action in self._actions:
                if action.dest in values and action.default is None and "default" not in (action.help or ""):
                    shown = f"(default: {values[action.dest]})".replace("%", "%%")
                    action.help = f"{action.help} {shown}" if action.help else shown
        return super().format_help()

    def add_argument(self, *args, **kwargs):
        action = super().add_argument(*args, **kwargs)
        # argparse prints nothing for an option without help text, so its default would not show
        if action.option_strings and not action.help and action.default not in (None, argparse.SUPPRESS):
            action.help = "(default: %(default)s)"
        return action


DEVICE_HELP = "auto (cuda when torch sees a GPU, else cpu), cpu, cuda or cuda:N"


def device_name(text: str) -> str:
    """A --device value as given: auto, cpu, cuda or cuda:N (whether it exists is checked when the
    command runs, by :func:`resolve_device`)."""
    if _is_device_name(text):
        return text
    raise argparse.ArgumentTypeError(f"must be auto, cpu, cuda or cuda:N, got {text!r}")


def _is_device_name(text: str) -> bool:
    kind, _, index = text.partition(":")
    return text in ("auto", "cpu", "cuda") or (kind == "cuda" and index.isdigit())


def add_device_argument(parser: argparse.ArgumentParser, help: str = DEVICE_HELP) -> None:
    parser.add_argument("--device", type=device_name, default="auto", help=help)


def resolve_device(requested: str) -> str:
    """The device a command runs on: ``auto`` is cuda when torch sees a GPU, else cpu; a CUDA
    device torch cannot use is refused with a ValueError saying why, before any work starts."""
    import torch

    if not _is_device_name(str(requested)):
        raise ValueError(f"--device must be auto, cpu, cuda or cuda:N, got {requested!r}")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cpu":
        return requested
    if not torch.cuda.is_available():
        reason = (f"torch {torch.__version__} was built without CUDA" if torch.version.cuda is None
                  else f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU")
        raise ValueError(f"--device {requested}: CUDA is not available ({reason})")
    _, _, index = requested.partition(":")
    if index and int(index) >= torch.cuda.device_count():
        raise ValueError(f"--device {requested}: torch sees {torch.cuda.device_count()} GPU(s)")
    return requested

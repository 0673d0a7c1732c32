"""Loading torch files without running code hidden in them.

``torch.load(..., weights_only=True)`` rebuilds tensors and plain containers (dicts, lists, tuples,
strings, numbers) and refuses every other pickled object, so a file crafted to run code when it is
unpickled (a ``__reduce__`` that calls ``exec`` or ``os.system``) is refused before anything runs.
:func:`load_weights_file` is that call with a one-line error naming the file; :func:`torch_load_reason`
shortens torch's own message (a dozen lines of advice) to the global it refused.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from streamdet.errors import FileFormatError

REFUSED = "refused: it pickles objects, not only tensors and plain data"


def torch_load_reason(error: BaseException) -> str:
    """One line for a ``torch.load`` error: for a refused pickle ``REFUSED`` and the global torch
    refused, else the error's type and first line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    refused = [line for line in lines if line.startswith("WeightsUnpickler error")]
    if refused:
        detail = refused[0].removeprefix("WeightsUnpickler error: ").split(" was not an allowed")[0]
        return f"{REFUSED} ({detail:.200})"
    if isinstance(error, pickle.UnpicklingError):
        return f"{REFUSED} ({(lines or [''])[0]:.200})"
    return f"{type(error).__name__}: {(lines or [''])[0]:.200}"


def load_weights_file(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)`` onto the CPU; ``FileFormatError`` naming the file when
    it is not a torch file or holds anything but tensors and plain data (unpickling it could run code)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise FileFormatError(path, torch_load_reason(error)) from None
    except Exception as error:  # torch.load raises zip, EOF and runtime errors for non-torch files
        raise FileFormatError(path, f"not a torch file ({torch_load_reason(error)})") from None

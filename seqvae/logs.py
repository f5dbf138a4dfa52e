"""Where the library's progress messages go unless a caller passes its own ``log``: standard
error. A Python user's standard output is theirs; the CLI's results are the only thing seqvae
prints there."""
from __future__ import annotations

import sys


def to_stderr(message: str) -> None:
    """Write one line to standard error, at once (so it interleaves with progress bars)."""
    print(message, file=sys.stderr, flush=True)

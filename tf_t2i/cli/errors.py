"""Turns expected failures into one line on stderr and an exit code."""
from __future__ import annotations

import errno
import sys
from typing import Callable

from tf_t2i.errors import UserInputError


_DISK_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None) -> int:
    """Runs `main(argv)`; user errors print `error: <sentence>` and exit 2, Ctrl-C exits 130."""
    try:
        return main(argv)
    except UserInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        if error.errno not in _DISK_FULL:
            raise
        # Logs, samples or the export hit a full disk; checkpoints report it themselves.
        print(f"error: could not write {error.filename or 'a file'} ({error.strerror}): free "
              "disk space and run again (a training run continues with --resume).",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        print(str(interrupt) or "interrupted.", file=sys.stderr)
        return 130

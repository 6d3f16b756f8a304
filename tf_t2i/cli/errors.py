"""Turns expected failures into one line on stderr and an exit code."""
from __future__ import annotations

import sys
from typing import Callable

from tf_t2i.errors import UserInputError


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None) -> int:
    """Runs `main(argv)`; user errors print `error: <sentence>` and exit 2, Ctrl-C exits 130."""
    try:
        return main(argv)
    except UserInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        print(str(interrupt) or "interrupted.", file=sys.stderr)
        return 130

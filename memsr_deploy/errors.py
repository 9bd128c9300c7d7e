"""One error type for everything a user can get wrong; CLIs print it as a single line and exit non-zero."""
from __future__ import annotations

import functools
import sys


class MemsrError(Exception):
    """A user-facing failure: bad file, bad argument, failed verification. Message names the file and reason."""

    def __init__(self, message: str, path=None):
        super().__init__(f"{path}: {message}" if path is not None else message)


def cli_errors(main):
    """Wrap a CLI entry point: MemsrError and the usual I/O failures become one line on stderr and exit 2."""

    @functools.wraps(main)
    def wrapper(argv=None):
        try:
            return main(argv)
        except MemsrError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except (FileNotFoundError, PermissionError, IsADirectoryError) as e:
            print(f"error: {e.filename}: {e.strerror}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130

    return wrapper

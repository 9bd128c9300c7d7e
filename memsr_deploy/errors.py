"""One error type for everything a user can get wrong, and the one place where every CLI turns failures into a
single line on stderr and an exit code (2 for bad input, 130/143 for SIGINT/SIGTERM)."""
from __future__ import annotations

import contextlib
import functools
import signal
import sys
import threading
import warnings


class MemsrError(Exception):
    """A user-facing failure: bad file, bad argument, failed verification. Message names the file and reason."""

    def __init__(self, message: str, path=None):
        super().__init__(f"{path}: {message}" if path is not None else message)


class Terminated(BaseException):
    """SIGTERM as an exception (like KeyboardInterrupt for SIGINT), so that ``finally`` blocks and the
    ``atomic_path`` context manager remove temporary files before the process exits."""

    def __init__(self, signum: int, detail: str = ""):
        super().__init__(f"signal {signum}")
        self.signum = signum
        self.detail = detail  # said after "terminated: " (e.g. where a training run left its checkpoint)


def _raise_terminated(signum, frame):
    raise Terminated(signum)


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"warning: {message}", file=file or sys.stderr)


@contextlib.contextmanager
def _cli_context():
    """Warnings as one line each; SIGTERM/SIGINT as exceptions (so temporary files are removed)."""
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        with _signals_as_exceptions():
            yield


@contextlib.contextmanager
def _signals_as_exceptions():
    # Signal handlers can only be set from the main thread; elsewhere (a CLI called from a worker thread)
    # the default behaviour stays.
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old_term = signal.signal(signal.SIGTERM, _raise_terminated)
    old_int = signal.signal(signal.SIGINT, signal.default_int_handler)  # SIGINT -> KeyboardInterrupt
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)


def _os_error_line(e: OSError) -> str:
    reason = e.strerror or str(e) or e.__class__.__name__
    if e.filename is None:
        return reason
    names = f"{e.filename} -> {e.filename2}" if getattr(e, "filename2", None) else f"{e.filename}"
    return f"{names}: {reason}"


def cli_errors(main):
    """Wrap a CLI entry point: MemsrError, I/O failures and signals become one line on stderr.

    Exit codes: 2 for bad input (MemsrError, OSError, bad values), 130 for SIGINT, 143 for SIGTERM. Anything
    else is a bug and keeps its traceback.
    """

    @functools.wraps(main)
    def wrapper(argv=None):
        try:
            with _cli_context():
                return main(argv)
        except MemsrError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except OSError as e:
            print(f"error: {_os_error_line(e)}", file=sys.stderr)
            return 2
        except MemoryError:
            print("error: out of memory (try a smaller --tile / --max-memory, or a smaller input)",
                  file=sys.stderr)
            return 2
        except SystemExit as e:  # argparse: --help (0) or a bad flag (2, its one line already printed)
            return e.code if isinstance(e.code, int) else 2
        except KeyboardInterrupt as e:
            print("interrupted" + (f": {e}" if str(e) else ""), file=sys.stderr)
            return 130
        except Terminated as e:
            print("terminated" + (f": {e.detail}" if e.detail else ""), file=sys.stderr)
            return 128 + e.signum

    return wrapper

"""Checks of user-given input files, with one wording everywhere.

Every reader of a file named on the command line (weights, data, model code, pruning plans,
layer ratios, result files) first asks `regular_file`: an empty path, a missing path, a
folder and a special file (a FIFO, a device such as /dev/null or /dev/zero, a socket) are
refused in one line before anything opens them, so a FIFO never blocks and /dev/zero is
never read to exhaustion.

>>> regular_file("", "weights file")
Traceback (most recent call last):
...
approxmap.core.exceptions.InvalidParameterError: The weights file path is empty.
"""

from __future__ import annotations

import stat
from pathlib import Path

from approxmap.core.exceptions import ApproxmapError, InvalidParameterError

MAX_TEXT_BYTES = 64 * 2**20  # a JSON plan or ratios file is far smaller


def regular_file(path: str | Path, what: str,
                 error: type[ApproxmapError] = InvalidParameterError) -> Path:
    """`path` as a Path when it names an existing regular file (symlinks followed).

    Raises:
        error (an ApproxmapError class; InvalidParameterError by default): the path is empty,
            does not exist, is a folder, or is a special file; the message names `what`.
    """
    text = str(path)
    if not text.strip():
        raise error(f"The {what} path is empty.")
    file, name = Path(text), what[:1].upper() + what[1:]
    try:
        mode = file.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise error(f"{name} not found: {file}") from None
    except OSError as exc:
        raise error(f"Cannot access {what} {file}: {exc.strerror or exc}.") from None
    if stat.S_ISDIR(mode):
        raise error(f"{name} {file} is a folder, not a file.")
    if not stat.S_ISREG(mode):
        kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a device" if
                stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if
                stat.S_ISSOCK(mode) else "a special file")
        raise error(f"{name} {file} is {kind}, not a regular file.")
    return file


def read_text(path: str | Path, what: str,
              error: type[ApproxmapError] = InvalidParameterError) -> str:
    """The UTF-8 text of a regular file of at most MAX_TEXT_BYTES.

    Raises:
        error: the path is not a regular file (see `regular_file`), is too large, cannot be
            read, or is not UTF-8 text.
    """
    file = regular_file(path, what, error)
    try:
        if file.stat().st_size > MAX_TEXT_BYTES:
            raise error(f"{what[:1].upper() + what[1:]} {file} is larger than "
                        f"{MAX_TEXT_BYTES >> 20} MiB; it is not a text file of this kind.")
        return file.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{what[:1].upper() + what[1:]} {file} is not text (not UTF-8).") from None
    except OSError as exc:
        raise error(f"Cannot read {what} {file}: {exc.strerror or exc}.") from None


__all__ = ["MAX_TEXT_BYTES", "read_text", "regular_file"]

"""The `approxmap` command line: one module per command, each with `add_parser` and `run`.

A command parses its arguments into a spec, makes one call of the public API, saves the
result in its run folder and prints. Every ApproxmapError (and argparse's own errors) ends
as one line on stderr and exit code 2; a real Ctrl-C as one line and exit code 130, at any
moment (also while torch loads).
"""

from __future__ import annotations

import signal
import sys

COMMANDS = ("profile", "layers", "list", "train", "significance", "sensitivity", "prune",
            "units", "emulate", "predict", "plan", "report", "run")


class _Interrupted:
    """Tells a real Ctrl-C (SIGINT) from a KeyboardInterrupt raised by user code."""

    real = False
    resumable = False  # set once a command has opened its run folder

    @classmethod
    def handler(cls, signum, frame) -> None:
        cls.real = True
        raise KeyboardInterrupt


def _parser():
    import argparse
    import importlib
    import re

    from approxmap.core.version import __version__

    class Parser(argparse.ArgumentParser):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            # Let negative numbers and lists like -0.5,0,0.5 be option values.
            self._negative_number_matcher = re.compile(r"^-\.?\d[\d.,:eE+-]*$")

        def error(self, message: str) -> None:  # one line, exit 2, no usage dump
            self.exit(2, f"approxmap: error: {message} (see '{self.prog} --help')\n")

    parser = Parser(prog="approxmap", description="Systematic error-resilience analysis of CNNs "
                                                  "for approximate computing.")
    parser.add_argument("--version", action="version", version=f"approxmap {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"approxmap.cli.{name}_cmd").add_parser(sub)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"approxmap: warning: {message}", file=sys.stderr)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:600] if text else type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    previous = signal.signal(signal.SIGINT, _Interrupted.handler)
    _Interrupted.real = _Interrupted.resumable = False
    try:
        return _main(argv)
    except KeyboardInterrupt:
        if _Interrupted.real:
            hint = ("; finished trials are kept in the run folder and the same command resumes"
                    if _Interrupted.resumable else "")
            print(f"approxmap: interrupted{hint}.", file=sys.stderr)
            return 130
        print("approxmap: error: the model's code raised KeyboardInterrupt", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGINT, previous)


def _main(argv: list[str] | None) -> int:
    import warnings

    warnings.showwarning = _show_warning
    from approxmap.core.exceptions import ApproxmapError

    parser = _parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        parser.exit(2, f"approxmap: error: unrecognized arguments: {' '.join(unknown)} "
                       f"(see 'approxmap {args.command} --help')\n")
    try:
        return int(args.run(args) or 0)
    except ApproxmapError as exc:
        print(f"approxmap: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except MemoryError:
        print("approxmap: error: out of memory; lower --batch-size, --images or the sizes asked "
              "for.", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        if "out of memory" in str(exc) or "can't allocate" in str(exc).lower():
            print(f"approxmap: error: out of memory ({_one_line(exc)[:160]}); lower "
                  "--batch-size, --images or the sizes asked for.", file=sys.stderr)
            return 2
        raise

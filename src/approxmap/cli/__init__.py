"""The `approxmap` command line: one module per command, each with `add_parser` and `run`.

A command parses its arguments, calls the public API and prints. Every ApproxmapError (and
argparse's own errors) ends as one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
import warnings

from approxmap.exceptions import ApproxmapError

COMMANDS = ("profile", "layers", "list", "train", "significance", "prune", "sensitivity")


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Let negative numbers and lists like -0.5,0,0.5 be option values.
        self._negative_number_matcher = re.compile(r"^-\.?\d[\d.,:eE+-]*$")

    def error(self, message: str) -> None:  # one line, exit 2, no usage dump
        self.exit(2, f"approxmap: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="approxmap",
        description="Systematic error-resilience analysis of CNNs for approximate computing.",
    )
    from approxmap import __version__

    parser.add_argument("--version", action="version", version=f"approxmap {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"approxmap.cli.{name}_cmd").add_parser(sub)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"approxmap: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    warnings.showwarning = _show_warning
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        parser.exit(2, f"approxmap: error: unrecognized arguments: {' '.join(unknown)} "
                       f"(see 'approxmap {args.command} --help')\n")
    try:
        return int(args.run(args) or 0)
    except ApproxmapError as exc:
        print(f"approxmap: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("approxmap: interrupted; finished trials are stored, run again to resume.",
              file=sys.stderr)
        return 130

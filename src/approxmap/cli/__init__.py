"""The `approxmap` command line: one module per command, each with `add_parser` and `run`.

A command parses its arguments into a spec, makes one call of the public API, saves the
result in its run folder and prints. Every ApproxmapError (and argparse's own errors) ends
as one line on stderr and exit code 2, and so does any exception raised by the user's own
model code (its module, factory or forward, SystemExit and KeyboardInterrupt included); a
real Ctrl-C (SIGINT) ends as one line and exit code 130, at any moment: while the modules
load (before anything can have been written) the process ends at once; later the
interrupt unwinds the command, so its run folder is closed with every finished trial kept.
"""

from __future__ import annotations

import os
import signal
import sys

COMMANDS = ("profile", "layers", "list", "train", "significance", "sensitivity", "prune",
            "units", "emulate", "predict", "plan", "report", "run")


class _Interrupted:
    """Tells a real Ctrl-C (SIGINT) from a KeyboardInterrupt raised by user code."""

    real = False
    loading = False  # modules are being imported: end at once (nothing written yet)
    folder = None  # the command's RunFolder once open (to say whether it resumes)
    model = ""  # the --model spec, to name it in a message
    held: list[str] = []  # warnings of loading, shown when the command succeeded

    @classmethod
    def handler(cls, signum, frame) -> None:
        cls.real = True
        if cls.loading:  # a KeyboardInterrupt inside a C extension's import is not ours to
            _interrupted_line()  # catch (it becomes an ImportError or a lost exit code)
            _flush()
            os._exit(130)
        raise KeyboardInterrupt


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def _interrupted_line() -> None:
    folder = _Interrupted.folder
    written = getattr(folder, "trials_written", 0) if folder is not None else 0
    hint = (f"; {written} finished trial{'s' if written != 1 else ''} are kept in {folder.path} "
            "and the same command resumes" if written else "")
    print(f"approxmap: interrupted{hint}.", file=sys.stderr)


def _parser():
    import argparse
    import importlib
    import re

    from approxmap.core.version import __version__

    class Parser(argparse.ArgumentParser):
        def __init__(self, *args, **kwargs) -> None:
            kwargs.setdefault("allow_abbrev", False)  # --out never means --output-key
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
    print(f"approxmap: warning: {' '.join(str(message).split())}", file=sys.stderr)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:600] if text else type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit code (0, 2 for an error, 130 for Ctrl-C).

    Called without `argv` (the console script, `python -m approxmap`), a real Ctrl-C ends
    the process with exit code 130 once the command has unwound (a KeyboardInterrupt that
    reached code run by `exec` would otherwise make Python end through SIGINT instead), and
    one after the command ended is ignored.
    """
    previous = signal.signal(signal.SIGINT, _Interrupted.handler)
    _Interrupted.real = False
    _Interrupted.folder, _Interrupted.model, _Interrupted.held = None, "", []
    _Interrupted.loading = True
    try:
        return _main(argv)
    except BaseException as exc:
        if _Interrupted.real:  # whatever the interrupt became on its way up
            _interrupted_line()
            if argv is None:
                _flush()
                os._exit(130)
            return 130
        if isinstance(exc, KeyboardInterrupt):
            print(f"approxmap: error: {_model_label()} raised KeyboardInterrupt",
                  file=sys.stderr)
            return 2
        raise
    finally:
        _Interrupted.loading = False
        # The process's own command line: a Ctrl-C after the command ended changes nothing
        # (its exit code stands); called with argv, the caller's handler comes back.
        signal.signal(signal.SIGINT, signal.SIG_IGN if argv is None else previous)


def _model_label() -> str:
    return f"the model's code (--model {_Interrupted.model})" if _Interrupted.model else (
        "the model's code")


def _main(argv: list[str] | None) -> int:
    import warnings

    warnings.showwarning = _show_warning
    from approxmap.core.exceptions import ApproxmapError, ModelError

    parser = _parser()
    _Interrupted.loading = False
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        parser.exit(2, f"approxmap: error: unrecognized arguments: {' '.join(unknown)} "
                       f"(see 'approxmap {args.command} --help')\n")
    _Interrupted.model = getattr(args, "model", "") or ""
    try:
        code = int(args.run(args) or 0)
        for message in _Interrupted.held:
            _show_warning(message, UserWarning, "", 0)
        return code
    except ApproxmapError as exc:
        if isinstance(exc, ModelError) and _is_out_of_memory(exc.__context__):
            print(f"approxmap: error: {_out_of_memory(args, exc.detail[:160])}", file=sys.stderr)
            return 2
        text = _one_line(exc)
        users = isinstance(exc, ModelError) or (  # e.g. a trace that ran the user's forward
            exc.__context__ is not None and _user_frame(exc.__context__) is not None)
        if users and _Interrupted.model and _Interrupted.model not in text:
            text += f" (--model {_Interrupted.model})"
        print(f"approxmap: error: {text}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"approxmap: error: {_out_of_memory(args)}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # approxmap never exits inside a command: the user's code did
        code = "" if exc.code is None else f": {exc.code}"
        print(f"approxmap: error: {_model_label()} raised SystemExit{code}", file=sys.stderr)
        return 2
    except Exception as exc:
        if _is_out_of_memory(exc):
            print(f"approxmap: error: {_out_of_memory(args, _one_line(exc)[:160])}",
                  file=sys.stderr)
            return 2
        where = _user_frame(exc)
        if where is None:
            raise  # a bug of approxmap: the traceback is what a report needs
        print(f"approxmap: error: {_model_label()} raised {type(exc).__name__}: "
              f"{_one_line(exc)[:300]} (at {where})", file=sys.stderr)
        return 2


def _is_out_of_memory(exc: BaseException | None) -> bool:
    """MemoryError, or an allocator's RuntimeError (torch.OutOfMemoryError on CUDA, "can't
    allocate memory" on the CPU)."""
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate" in text))


def _out_of_memory(args, detail: str = "") -> str:
    """What was asked for (the options that size the work) and what to lower."""
    asked = [f"--{name.replace('_', '-')} "
             f"{','.join(map(str, value)) if isinstance(value, tuple) else value}" for name in (
        "batch_size", "images", "calib_images", "latency_batch", "input_shape")
        if (value := getattr(args, name, None)) is not None]
    return (f"out of memory{f' ({detail})' if detail else ''} with "
            f"{', '.join(asked) or 'the default sizes'}; lower "
            f"{', '.join(a.split()[0] for a in asked) or '--batch-size or --images'}.")


def _user_frame(exc: BaseException) -> str | None:
    """'file.py:LINE' of the innermost frame of the user's own code in the exception's
    traceback (code outside approxmap, the standard library and installed packages, or
    the module named by a `pkg.module:factory` spec), or None."""
    import site
    import sysconfig
    import traceback
    from pathlib import Path

    import approxmap

    places = [sysconfig.get_paths().get(key) for key in ("stdlib", "platstdlib", "purelib",
                                                          "platlib")]
    places += [*site.getsitepackages(), site.getusersitepackages()]
    system = {Path(p).resolve() for p in places if p}
    system.add(Path(approxmap.__file__).resolve().parent)
    user = set()
    location = _Interrupted.model.rpartition(":")[0]
    module = sys.modules.get(location) if location and "/" not in location else None
    if getattr(module, "__file__", None):
        user.add(Path(module.__file__).resolve().parent)
    found = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename.startswith("<"):
            continue
        path = Path(frame.filename).resolve()
        if _inside(path, user) or not _inside(path, system):
            found = f"{path.name}:{frame.lineno}"
    return found


def _inside(path, roots) -> bool:
    return any(path.is_relative_to(root) for root in roots)

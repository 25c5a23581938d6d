"""Campaign files: a TOML file that says what one command line says (docs/campaign-files.md).

There is one definition of every option: the command's own argparse parser. A campaign file's
keys are the long option names of the command its `analysis` names (`-` or `_` alike); the
file is translated into that command's argv and parsed by the same parser, then run by the
same `run` function. Every error names the file, the key and its line; errors of the
command's own validation (argparse types, ApproxmapError) are mapped back to the key the
flag came from.

Reading: `load(path, overrides)` -> Campaign (argv, parsed args, where each flag came from).
Writing: `resolved_config(args, ...)` -> the fully resolved options of a parsed command line
as a campaign file, with a `[provenance]` table that `approxmap run` ignores.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import platform
import re
import shlex
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from approxmap.core.exceptions import ApproxmapError, InvalidParameterError

CONFIG = "config.toml"
PROVENANCE = "provenance"
DEFAULT_VERB = {"units": "characterize"}  # a command with verbs: the verb that is an analysis
NOT_RUNNABLE = ("run",)
# Options written at the top of a resolved config; the others go in the analysis's table.
SHARED = ("model", "weights", "output-key", "data", "images", "calib-images", "trials",
          "batch-size", "seed", "engine", "device", "quiet", "out")
# A message that names an error model's parameter names the option that set it.
ALIASES = {"std": ("sigma", "sweep", "param"), "mean": ("mean", "param"), "rate": ("rate", "param")}


def normalize(key: str) -> str:
    return key.strip().replace("_", "-")


def where(path: str | Path, line: int | None) -> str:
    return f"{path} line {line}" if line else str(path)


# -- the parser: the one definition of every option ---------------------------------------------

def command_parser(words: list[str]) -> argparse.ArgumentParser:
    """The argparse parser of `approxmap WORDS...` (e.g. ["units", "characterize"])."""
    from approxmap.cli import _parser

    parser = _parser()
    for word in words:
        parser = _subparsers(parser).choices[word]
    return parser


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def _has_verbs(parser: argparse.ArgumentParser) -> bool:
    return any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)


def option_key(action: argparse.Action) -> str | None:
    """The campaign-file key of an option: its long name without `--` (positionals: their
    dest); None for --help and verbs."""
    if isinstance(action, (argparse._HelpAction, argparse._VersionAction,
                           argparse._SubParsersAction)):
        return None
    longs = [s for s in action.option_strings if s.startswith("--")]
    if action.option_strings:
        return longs[0][2:] if longs else normalize(action.dest)
    return normalize(action.dest)


def options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {key: a for a in parser._actions if (key := option_key(a)) is not None}


def _is_flag(action: argparse.Action) -> bool:
    return action.option_strings and action.nargs == 0


def _is_pairs(action: argparse.Action) -> bool:
    """An option taking NAME=VALUE text (a TOML table is accepted for it)."""
    return "=" in str(action.metavar or "")


def _is_comma_list(action: argparse.Action) -> bool:
    from approxmap.cli.options import name_list, number_list, unit_list

    return action.type in (name_list, number_list, unit_list)


# -- where keys are: tomllib gives no positions -------------------------------------------------

_BARE = r"[A-Za-z0-9_-]+"
_QUOTED = r'"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\''
_KEY = rf"(?:{_BARE}|{_QUOTED})(?:\s*\.\s*(?:{_BARE}|{_QUOTED}))*"
_HEADER = re.compile(rf"\s*\[\[?\s*({_KEY})\s*\]\]?")
_ASSIGN = re.compile(rf"\s*({_KEY})\s*=")


def _key_path(text: str) -> tuple[str, ...]:
    data: Any = tomllib.loads(f"{text} = 0")
    path = []
    while isinstance(data, dict):
        (key, data), = data.items()
        path.append(key)
    return tuple(path)


def _scan(text: str, depth: int, quote: str | None) -> tuple[int, str | None]:
    """The bracket depth and open multi-line string after `text` (a value's rest of line)."""
    i = 0
    while i < len(text):
        if quote is not None:
            if quote == '"""' and text[i] == "\\":
                i += 2
            elif text.startswith(quote, i):
                quote, i = None, i + 3
            else:
                i += 1
            continue
        char = text[i]
        if char == "#":
            break
        if text.startswith('"""', i) or text.startswith("'''", i):
            quote, i = text[i:i + 3], i + 3
        elif char == '"':
            i += 1
            while i < len(text) and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
        elif char == "'":
            end = text.find("'", i + 1)
            i = len(text) if end < 0 else end + 1
        else:
            depth += char in "[{"
            depth -= char in "]}"
            i += 1
    return depth, quote


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """The line (1-based) of every key and table of a valid TOML text, by key path."""
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    depth, quote = 0, None
    for number, line in enumerate(text.splitlines(), 1):
        if depth > 0 or quote is not None:
            depth, quote = _scan(line, depth, quote)
            continue
        header = _HEADER.match(line)
        assign = None if header else _ASSIGN.match(line)
        if header:
            table = _key_path(header.group(1))
            path = table
        elif assign:
            path = table + _key_path(assign.group(1))
            depth, quote = _scan(line[assign.end():], 0, None)
        else:
            continue
        for end in range(1, len(path) + 1):
            lines.setdefault(path[:end], number)
    return lines


# -- reading ------------------------------------------------------------------------------------

@dataclass
class Item:
    """One option given by the file."""

    written: str  # the key as written
    key: str  # normalized: the long option name
    value: Any
    line: int | None


@dataclass
class Campaign:
    """A campaign file translated into a command line and parsed by the command's parser."""

    path: str
    words: list[str]  # ["profile"] or ["units", "characterize"]
    argv: list[str]
    analysis_line: int | None
    items: list[Item] = field(default_factory=list)
    origin: dict[str, Item] = field(default_factory=dict)  # "--sigma" / positional dest -> Item
    names: dict[str, str] = field(default_factory=dict)  # "--sigma" / metavar -> key
    args: argparse.Namespace | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def command_line(self) -> str:
        return "approxmap " + shlex.join(self.argv)

    # -- errors of the command's own validation, back to the file's key and line --------------

    def locate(self, message: str) -> str:
        """An ApproxmapError's message prefixed with the file, line and key it came from (the
        file alone when no key of the file is named)."""
        text = " ".join(message.split())
        item = self._mentioned(text)
        if item is not None:
            return f"{where(self.path, item.line)}: {item.key}: {text}"
        return f"{self.path}: {text}"

    def locate_parse_error(self, message: str) -> str | None:
        """argparse's message with the file's key and line instead of the flag; None when the
        flag did not come from the file."""
        text = " ".join(message.split())
        argument = re.match(r"argument ([^:]+): (.*)", text)
        if argument:
            for name in argument.group(1).split("/"):
                item = self.origin.get(name)
                if item is not None:
                    return (f"{where(self.path, item.line)}: {item.key}: "
                            f"{self._keys(argument.group(2))}")
            return None
        required = re.match(r"(the following arguments are required:|one of the arguments) "
                            r"(.*?)(?: is required)?$", text)
        if required:
            names = [self._key_of(n) for n in re.split(r"[,\s]+", required.group(2)) if n]
            which = "one of " if required.group(1).startswith("one") else ""
            return (f"{where(self.path, self.analysis_line)}: analysis {' '.join(self.words)} "
                    f"needs {which}{', '.join(names)} (none given).")
        return None

    def _key_of(self, name: str) -> str:
        return self.names.get(name, name.removeprefix("--"))

    def _keys(self, text: str) -> str:
        """'not allowed with argument --plan' -> '... with plan' when the file gave plan."""
        def key(match: re.Match) -> str:
            item = self.origin.get(match.group(1))
            return item.key if item is not None else match.group(0)
        return re.sub(r"argument (--[\w-]+)", key, text)

    def _mentioned(self, text: str) -> Item | None:
        """The file's item an error message is about: a --flag it names, else a value of the
        file it quotes, else an option name it quotes (or an error-model parameter set by one)."""
        for flag in re.findall(r"--[A-Za-z][\w-]*", text):
            if flag in self.origin:
                return self.origin[flag]
        quoted = [a or b for a, b in re.findall(r"'([^']+)'|\"([^\"]+)\"", text)]
        for word in quoted:
            for item in self.items:
                if word in _texts(item.value):
                    return item
        by_key = {item.key: item for item in self.items}
        for word in quoted + re.findall(r"[\w-]+", text):
            for key in (normalize(word), *ALIASES.get(word, ())):
                if key in by_key:
                    return by_key[key]
        return None

    @contextlib.contextmanager
    def errors_located(self) -> Iterator[None]:
        """ApproxmapErrors raised inside name the file's key and line."""
        try:
            yield
        except ApproxmapError as exc:
            exc.args = (self.locate(str(exc)),)
            raise


def _texts(value: Any) -> set[str]:
    if isinstance(value, dict):
        return {t for k, v in value.items() for t in (k, *_texts(v))}
    if isinstance(value, list):
        return {t for v in value for t in _texts(v)}
    return {value} if isinstance(value, str) else set()


def read(path: str | Path) -> tuple[dict[str, Any], dict[tuple[str, ...], int]]:
    """The file's data and the line of every key.

    Raises:
        InvalidParameterError: a missing or unreadable file, or not TOML (line named).
    """
    file = Path(path)
    if file.is_dir():
        raise InvalidParameterError(f"{path}: a folder without {CONFIG}.")
    try:
        text = file.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise InvalidParameterError(f"{path}: no such campaign file.") from None
    except UnicodeDecodeError:
        raise InvalidParameterError(f"{path}: not a TOML campaign file (not UTF-8 text).") from None
    except OSError as exc:
        raise InvalidParameterError(f"{path}: cannot read it ({exc.strerror or exc}).") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        at = re.search(r"\s*\(at line (\d+), column (\d+)\)", message)
        if at:
            message = f"{message[:at.start()]} (column {at.group(2)})"
        line = int(at.group(1)) if at else None
        raise InvalidParameterError(f"{where(path, line)}: not valid TOML: {message}.") from None
    return data, key_lines(text)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"


class _WrongType(Exception):
    pass


def _scalar(value: Any) -> str:
    """A TOML string or number as the command line's text of it."""
    if isinstance(value, bool):
        raise _WrongType("expected a string or number, got a boolean (true/false are for flags)")
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    raise _WrongType(f"expected a string or number, got {_kind(value)}")


def _list_text(value: Any) -> str:
    """An array as a comma list (a string or number as itself)."""
    if isinstance(value, list):
        if not value:
            raise _WrongType("expected at least one value, got an empty array")
        return ",".join(_scalar(v) for v in value)
    return _scalar(value)


def _pair_text(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return f"{name}={str(value).lower()}"
    return f"{name}={_list_text(value)}"


def _option_argv(action: argparse.Action, value: Any) -> list[str]:
    """The command-line words of one option given `value` from the file."""
    flag = next(s for s in action.option_strings if s.startswith("--"))
    if _is_flag(action):
        if not isinstance(value, bool):
            raise _WrongType(f"a flag: expected true or false, got {_kind(value)}")
        return [flag] if value else []
    if action.nargs == "?":
        if isinstance(value, bool):
            return [flag] if value else []
        return [f"{flag}={_scalar(value)}"]
    if isinstance(value, dict):
        if not _is_pairs(action):
            raise _WrongType(f"expected {_expected(action)}, got a table")
        pairs = [_pair_text(k, v) for k, v in value.items()]
        if not isinstance(action, argparse._AppendAction) and len(pairs) != 1:
            raise _WrongType(f"expected a table of one NAME = VALUES, got {len(pairs)} entries")
        return [f"{flag}={p}" for p in pairs]
    if isinstance(action, argparse._AppendAction):
        values = value if isinstance(value, list) else [value]
        return [f"{flag}={_list_text(v)}" for v in values]
    if action.nargs in ("+", "*"):
        values = value if isinstance(value, list) else [value]
        if not values and action.nargs == "+":
            raise _WrongType("expected at least one value, got an empty array")
        return [flag, *(_scalar(v) for v in values)]
    if _is_comma_list(action):
        return [f"{flag}={_list_text(value)}"]
    if isinstance(value, list):
        raise _WrongType(f"expected {_expected(action)}, got an array")
    return [f"{flag}={_scalar(value)}"]


def _expected(action: argparse.Action) -> str:
    if action.choices:
        return "one of " + ", ".join(map(str, action.choices))
    return "one string or number"


def _positional_argv(action: argparse.Action, value: Any) -> list[str]:
    if action.nargs in ("+", "*"):
        values = value if isinstance(value, list) else [value]
        if not values and action.nargs == "+":
            raise _WrongType("expected at least one value, got an empty array")
        return [_scalar(v) for v in values]
    if isinstance(value, list):
        raise _WrongType("expected one string or number, got an array")
    return [_scalar(value)]


def runnable() -> list[str]:
    from approxmap.cli import COMMANDS

    return [c for c in COMMANDS if c not in NOT_RUNNABLE]


def translate(path: str, data: dict[str, Any], lines: dict[tuple[str, ...], int]) -> Campaign:
    """The command line a campaign file says (not yet parsed).

    Raises:
        InvalidParameterError: no or an unknown analysis, an unknown key (with close matches),
            a key given twice, a value of the wrong type; each with the key's line.
    """
    analysis = data.get("analysis")
    line = lines.get(("analysis",))
    if analysis is None:
        raise InvalidParameterError(
            f"{path}: no analysis key; say what runs, e.g. analysis = \"profile\" "
            f"(one of {', '.join(runnable())}).")
    if not isinstance(analysis, str) or not analysis.split():
        raise InvalidParameterError(f"{where(path, line)}: analysis: expected the name of an "
                                    f"analysis, got {_kind(analysis)}.")
    words = analysis.split()
    if words[0] not in runnable():
        close = difflib.get_close_matches(words[0], runnable(), n=3)
        hint = f"did you mean {' or '.join(close)}?" if close else f"one of {', '.join(runnable())}"
        raise InvalidParameterError(f"{where(path, line)}: unknown analysis {words[0]!r} ({hint}).")
    parser = command_parser(words[:1])
    if _has_verbs(parser):
        verbs = list(_subparsers(parser).choices)
        if len(words) == 1 and words[0] in DEFAULT_VERB:
            words.append(DEFAULT_VERB[words[0]])
        if len(words) != 2 or words[1] not in verbs:
            raise InvalidParameterError(f"{where(path, line)}: analysis {analysis!r}: expected "
                                        f"{' or '.join(f'{words[0]} {v}' for v in verbs)}.")
        parser = _subparsers(parser).choices[words[1]]
    elif len(words) > 1:
        raise InvalidParameterError(f"{where(path, line)}: unknown analysis {analysis!r}.")
    campaign = Campaign(path, words, [], line)
    known = options(parser)
    campaign.names = {name: key for key, a in known.items()
                      for name in (*a.option_strings, str(a.metavar or a.dest))}
    table = words[0]
    for key, value in data.items():
        if key == "analysis":
            continue
        if key == PROVENANCE:
            if not isinstance(value, dict):
                raise InvalidParameterError(f"{where(path, lines.get((key,)))}: provenance: "
                                            f"expected a table, got {_kind(value)}.")
            campaign.provenance = value
        elif key == table and isinstance(value, dict):
            campaign.items += [Item(k, normalize(k), v, lines.get((key, k), lines.get((key,))))
                               for k, v in value.items()]
        elif normalize(key) not in known and key in runnable() and isinstance(value, dict):
            raise InvalidParameterError(
                f"{where(path, lines.get((key,)))}: table [{key}] is for analysis {key}, but "
                f"this file runs analysis {table}.")
        else:
            campaign.items.append(Item(key, normalize(key), value, lines.get((key,))))
    seen: dict[str, Item] = {}
    positionals: dict[str, list[str]] = {}
    for item in campaign.items:
        here = where(path, item.line)
        action = known.get(item.key)
        if action is None:
            close = difflib.get_close_matches(item.key, list(known), n=3)
            hint = (f"did you mean {' or '.join(close)}?" if close
                    else f"see 'approxmap {' '.join(words)} --help'")
            raise InvalidParameterError(f"{here}: unknown key {item.written!r} for analysis "
                                        f"{' '.join(words)} ({hint}).")
        if item.key in seen:
            raise InvalidParameterError(f"{here}: {item.key} is given twice (also line "
                                        f"{seen[item.key].line}).")
        seen[item.key] = item
        try:
            if action.option_strings:
                campaign.argv += _option_argv(action, item.value)
                for flag in action.option_strings:
                    campaign.origin[flag] = item
            else:
                positionals[action.dest] = _positional_argv(action, item.value)
                campaign.origin[action.dest] = item
                if action.metavar:
                    campaign.origin[str(action.metavar)] = item
        except _WrongType as exc:
            raise InvalidParameterError(f"{here}: {item.key}: {exc}.") from None
    ordered = [v for a in parser._actions if not a.option_strings and a.dest in positionals
               for v in positionals[a.dest]]
    campaign.argv = [*words, *ordered, *campaign.argv]
    return campaign


class _ParseError(Exception):
    pass


def _raising(parser: argparse.ArgumentParser) -> None:
    """Make `parser` and its subparsers raise _ParseError instead of exiting."""
    def error(message: str) -> None:
        raise _ParseError(message)

    parser.error = error
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _raising(child)


def parse(campaign: Campaign, overrides: list[str] = ()) -> argparse.Namespace:
    """The campaign's argv (then `overrides`, which win) parsed by the command's own parser.

    Raises:
        InvalidParameterError: argparse's error, naming the file's key and line.
    """
    from approxmap.cli import _parser

    parser = _parser()
    _raising(parser)
    argv = [*campaign.argv, *overrides]
    try:
        args = parser.parse_args(argv)
    except _ParseError as exc:
        located = campaign.locate_parse_error(str(exc))
        raise InvalidParameterError(located or f"{exc} (see 'approxmap "
                                               f"{' '.join(campaign.words)} --help')") from None
    campaign.argv = argv
    campaign.args = args
    return args


def load(path: str | Path, overrides: list[str] = ()) -> Campaign:
    """A campaign file read, translated and parsed (a folder: its config.toml).

    Raises:
        InvalidParameterError: one line naming the file (and the key's line) for every bad file.
    """
    path = str(path)
    if Path(path).is_dir() and (Path(path) / CONFIG).is_file():
        path = str(Path(path) / CONFIG)
    data, lines = read(path)
    campaign = translate(path, data, lines)
    parse(campaign, list(overrides))
    return campaign


# -- writing: the resolved options of a command as a campaign file ------------------------------

def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # inf and nan are TOML too
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml(str(k))} = {_toml(v)}" for k, v in value.items()) + "}"
    escapes = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t"}
    return '"' + "".join(escapes.get(c) or (f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F
                                            else c) for c in str(value)) + '"'


def versions() -> dict[str, str]:
    import numpy
    import torch

    from approxmap.core.version import __version__

    return {"approxmap": __version__, "torch": torch.__version__,
            "python": platform.python_version(), "numpy": numpy.__version__}


def resolved_config(args: argparse.Namespace, *, out: str | Path | None = None,
                    data: str | None = None, command_line: str = "") -> str:
    """The fully resolved options of a parsed command (defaults included) as a campaign file,
    with `out` and `data` as resolved by the command, and a [provenance] table."""
    words = [args.command] + ([args.verb] if getattr(args, "verb", None) else [])
    parser = command_parser(words)
    values = dict(vars(args))
    if out is not None:
        values["out"] = str(out)
    if data is not None and values.get("data") is None:
        values["data"] = data
    analysis = args.command if DEFAULT_VERB.get(args.command) == getattr(args, "verb", None) \
        else " ".join(words)
    top = ["# approxmap campaign file: every option of this run, defaults included.",
           "# Rerun it with `approxmap run FILE` (options after FILE override, e.g. --out DIR).",
           f"analysis = {_toml(analysis)}"]
    table = [f"[{args.command}]"]
    for key, action in options(parser).items():
        value = values.get(action.dest)
        line = f"# {key} = (not set)" if value is None else f"{key} = {_toml(value)}"
        (top if key in SHARED and action.option_strings else table).append(line)
    provenance = {**versions(), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "platform": platform.platform(), "command": command_line or "approxmap "
                  + shlex.join(sys.argv[1:])}
    if "seed" in values:
        provenance["seed"] = values["seed"]
    lines = [*top, "", *table, "",
             f"[{PROVENANCE}]  # written by approxmap; `approxmap run` ignores this table",
             *(f"{k} = {_toml(v)}" for k, v in provenance.items())]
    return "\n".join(lines) + "\n"


def check_provenance(campaign: Campaign) -> str | None:
    """A warning when the file was written by other versions (results may differ)."""
    if not campaign.provenance:
        return None
    now = versions()
    differ = [f"{k} {campaign.provenance[k]} (now {now[k]})" for k in ("approxmap", "torch")
              if k in campaign.provenance and str(campaign.provenance[k]) != now[k]]
    if not differ:
        return None
    return f"{campaign.path} was written by {', '.join(differ)}; results may differ."


__all__ = ["CONFIG", "Campaign", "check_provenance", "command_parser", "key_lines", "load",
           "option_key", "options", "parse", "read", "resolved_config", "translate", "versions"]

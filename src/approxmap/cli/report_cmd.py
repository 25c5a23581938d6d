"""`approxmap report DIR`: rebuild a run folder's figures, tables and report.html from its results."""

from __future__ import annotations

from approxmap.cli.options import text

HELP = "rebuild report.html (and its figures) from the results in a run folder"


def add_parser(sub) -> None:
    p = sub.add_parser("report", help=HELP, description=HELP[0].upper() + HELP[1:] + ".")
    p.add_argument("folder", metavar="DIR", type=text("DIR"), help="a run folder")
    p.set_defaults(run=run)


def run(args) -> int:
    from pathlib import Path

    from approxmap.core.exceptions import InvalidParameterError
    from approxmap.report.folder import RunFolder

    if not Path(args.folder).is_dir():
        raise InvalidParameterError(f"{args.folder} is not a folder.")
    with RunFolder(args.folder) as folder:
        results = folder.results()
        if not results:
            raise InvalidParameterError(f"{args.folder} holds no approxmap results.")
        path = folder.write_report(rerender=True)
    print(f"Report: {path} ({', '.join(r.kind for r in results)})")
    return 0


__all__ = ["add_parser", "run"]

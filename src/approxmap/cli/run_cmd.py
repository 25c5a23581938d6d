"""`approxmap run CAMPAIGN.toml`: run the command a campaign file describes.

The file is translated into the command's own argv and run through the same parser and the
same `run` function as the command line (cli/campaignfile.py; docs/campaign-files.md).
"""

from __future__ import annotations

import argparse
import warnings

from approxmap.cli.options import text

HELP = "run a campaign file (TOML): one analysis with its model, data and options"


def add_parser(sub) -> None:
    p = sub.add_parser("run", help=HELP, description=HELP[0].upper() + HELP[1:] + ". Its keys are the "
                       "analysis's long option names; a run folder's config.toml reproduces "
                       "that run. See docs/campaign-files.md.")
    p.add_argument("--dry-run", action="store_true",
                   help="print the equivalent command line and stop (give it before the file)")
    p.add_argument("file", metavar="CAMPAIGN.toml", type=text("CAMPAIGN.toml"),
                   help="a campaign file, or a run folder (its config.toml)")
    p.add_argument("overrides", nargs=argparse.REMAINDER, metavar="OPTION",
                   help="options of the analysis after the file override the file's, e.g. "
                        "--out DIR --quiet")
    p.set_defaults(run=run)


def run(args) -> int:
    from approxmap.cli.campaignfile import check_provenance, load

    campaign = load(args.file, args.overrides)
    if args.dry_run:
        print(campaign.command_line)
        return 0
    warning = check_provenance(campaign)
    if warning:
        warnings.warn(warning, stacklevel=1)
    with campaign.errors_located():
        return int(campaign.args.run(campaign.args) or 0)


__all__ = ["add_parser", "run"]

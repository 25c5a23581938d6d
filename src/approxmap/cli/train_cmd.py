"""`approxmap train`: train a zoo architecture on Fashion-MNIST and cache its checkpoint.

    approxmap train --arch lenet5 --data fashion-mnist
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Create the `train` subparser."""
    parser = subparsers.add_parser(
        "train",
        help="train a zoo architecture (lenet5, vgg-small, resnet20, vgg16-cifar) on CPU",
        description="Deterministic CPU training with the architecture's documented recipe; "
                    "writes <arch>-<data>.safetensors and .json to the cache directory.",
    )
    parser.add_argument("--arch", required=True, help="architecture, e.g. lenet5 or resnet20")
    parser.add_argument("--data", default="fashion-mnist", help="training data (fashion-mnist)")
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    parser.add_argument("--seed", type=int, default=0, help="seed of init, shuffling, flips")
    parser.add_argument("--cache-dir", default=None,
                        help="checkpoint directory (default: $APPROXMAP_CACHE_DIR, "
                             "$XDG_CACHE_HOME/approxmap or ~/.cache/approxmap)")
    parser.add_argument("--train-images", type=int, default=None, metavar="N",
                        help="train on the first N training images only (quick runs)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or epoch lines")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Train, then print where the checkpoint went and its test accuracy."""
    from approxmap.exceptions import InvalidParameterError
    from approxmap.train import train

    if args.train_images is not None and args.train_images < 1:
        raise InvalidParameterError(f"--train-images must be >= 1. Got {args.train_images}.")
    result = train(args.arch, args.data, epochs=args.epochs, seed=args.seed,
                   cache=args.cache_dir, quiet=args.quiet, train_images=args.train_images)
    meta = result.metadata
    print(f"{args.arch}: test accuracy {100 * result.test_accuracy:.2f}% on {args.data} "
          f"after {meta['epochs']} epochs ({meta['train_seconds']:.0f} s); "
          f"checkpoint {result.checkpoint}")
    return 0

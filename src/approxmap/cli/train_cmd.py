"""`approxmap train`: train a zoo architecture on Fashion-MNIST and cache its checkpoint.

    approxmap train --arch lenet5 --data fashion-mnist
"""

from __future__ import annotations

import argparse

from approxmap.cli.options import images_int, int_in, seed_int, text


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Create the `train` subparser."""
    parser = subparsers.add_parser(
        "train",
        help="train a zoo architecture (lenet5, vgg-small, resnet20, vgg16-cifar) on CPU",
        description="Deterministic CPU training with the architecture's documented recipe; "
                    "writes <arch>-<data>.safetensors and .json to the cache directory.",
    )
    parser.add_argument("--arch", required=True, type=text("--arch"),
                        help="architecture, e.g. lenet5 or resnet20")
    parser.add_argument("--data", default="fashion-mnist", type=text("--data"),
                        help="training data (fashion-mnist)")
    parser.add_argument("--epochs", type=int_in(1, 1000, "a number of epochs"), default=None,
                        help="override the recipe's epochs")
    parser.add_argument("--seed", type=seed_int, default=0, help="seed of init, shuffling, flips")
    parser.add_argument("--cache-dir", default=None, type=text("--cache-dir"),
                        help="checkpoint directory (default: $APPROXMAP_CACHE_DIR, "
                             "$XDG_CACHE_HOME/approxmap or ~/.cache/approxmap)")
    parser.add_argument("--train-images", type=images_int, default=None, metavar="N",
                        help="train on N training images only, class-balanced (quick runs)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or epoch lines")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Train, then print where the checkpoint went and its test accuracy."""
    from approxmap.zoo.training import train

    result = train(args.arch, args.data, epochs=args.epochs, seed=args.seed,
                   cache=args.cache_dir, quiet=args.quiet, train_images=args.train_images)
    meta = result.metadata
    print(f"{args.arch}: test accuracy {100 * result.test_accuracy:.2f}% on {args.data} "
          f"after {meta['epochs']} epochs ({meta['train_seconds']:.0f} s); "
          f"checkpoint {result.checkpoint}")
    return 0

"""`train.py` / `tf-t2i-train`: resolve a configuration, check the data, train.

Configuration is resolved in this order: the preset, then the named flags (--data, --format,
--image-size, --batch-size, --steps, --epochs, --seed, --strategy), then each
`--set section.field=value`.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from tf_t2i.cli.errors import run_cli
from tf_t2i.config import (DATA_FORMATS, PRESETS, STRATEGIES, Config, apply_overrides,
                           get_preset)
from tf_t2i.data.attribute_words import attribute_words, read_attribute_words
from tf_t2i.data.dataset_summary import DatasetSummary
from tf_t2i.data.load_dataset import load_dataset
from tf_t2i.errors import UserInputError

# tf_t2i.training (TensorFlow, Keras) is imported only where a run needs it: parsing flags, the
# data scan and --dry-run then finish before TensorFlow starts, so an error is the only line on
# stderr (TF 2.21 prints its oneDNN start-up notice whatever TF_CPP_MIN_LOG_LEVEL says) and it
# comes in a second instead of after TensorFlow's import.


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train.py",
        description="Train GAN-INT-CLS (Reed et al. 2016) with a jointly trained char-CNN-RNN "
                    "text encoder and a style encoder.")
    parser.add_argument("--preset", default="default", choices=sorted(PRESETS),
                        help="named configuration (default: %(default)s, CPU-sized, "
                             "9-17 min on a 2-core CPU; docs/BENCHMARKS.md).")
    parser.add_argument("--data", help="dataset folder (not needed for --format synthetic).")
    parser.add_argument("--format", choices=DATA_FORMATS,
                        help="dataset layout: synthetic (built in), reed (text_c10), jsonl.")
    parser.add_argument("--image-size", type=int, choices=(32, 64, 128))
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--steps", type=int, help="total GAN training steps (overrides --epochs).")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--strategy", choices=STRATEGIES,
                        help="devices: default (one), mirrored (every local GPU), multiworker "
                             "(the cluster in TF_CONFIG; every worker runs the same command with "
                             "the same --out on a shared disk). Sets train.strategy.")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.FIELD=VALUE",
                        help="override any config field, e.g. --set train.learning_rate=1e-4 "
                             "(repeatable).")
    parser.add_argument("--out", help="run folder (default: runs/<preset>-<n>, a new one).")
    parser.add_argument("--resume", metavar="RUN_DIR",
                        help="continue the run in RUN_DIR from its latest checkpoint, with its "
                             "config.json; only --steps/--epochs, train.style_steps, the "
                             "train.*_every cadences, train.learning_rate and settings that "
                             "leave the weights alone (--strategy, train.steps_per_execution, "
                             "train.eval_*) may change.")
    parser.add_argument("--no-export", action="store_true",
                        help="end after the last checkpoint without writing RUN_DIR/export/ "
                             "(an earlier export there stays as it was; python evaluate.py "
                             "export --model RUN_DIR writes one later).")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the resolved configuration and a dataset summary, then exit.")
    return parser


def resolve_config(args: argparse.Namespace) -> Config:
    """The configuration the flags describe, validated."""
    if args.resume:
        from tf_t2i.runs import read_run_config
        try:
            config = read_run_config(args.resume)
        except UserInputError:
            raise
        except (ValueError, TypeError, AttributeError) as error:
            # Not JSON, or fields this version does not know: a clear line, not a traceback.
            raise UserInputError(
                f"{os.path.join(args.resume, 'config.json')} is not a configuration this "
                f"train.py can read ({error}): pass a run folder written by train.py, or start "
                f"a new run.") from None
    else:
        config = get_preset(args.preset)
    data, train = config.data, config.train
    named = {
        "data": {"path": args.data, "format": args.format, "image_size": args.image_size,
                 "batch_size": args.batch_size, "seed": args.seed},
        "train": {"steps": args.steps, "epochs": args.epochs, "strategy": args.strategy},
    }
    if args.data and not args.format and data.format == "synthetic":
        raise UserInputError("--data was given without --format: add --format reed or "
                             "--format jsonl.")
    if args.epochs and not args.steps:
        named["train"]["steps"] = 0
    data = dataclasses.replace(data, **{k: v for k, v in named["data"].items() if v is not None})
    train = dataclasses.replace(train, **{k: v for k, v in named["train"].items() if v is not None})
    config = dataclasses.replace(config, data=data, train=train)
    try:
        return apply_overrides(config, args.overrides).validate()
    except ValueError as error:
        raise UserInputError(str(error)) from None


def next_run_dir(root: str, preset: str) -> str:
    """runs/<preset>-<n> with the first n not taken."""
    n = 0
    while os.path.exists(os.path.join(root, f"{preset}-{n}")):
        n += 1
    return os.path.join(root, f"{preset}-{n}")


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    config = resolve_config(args)

    if args.dry_run:
        # Scanned first: bad data is then the only output, not an error after the config.
        dataset = load_dataset(config.data)
        summary = DatasetSummary.of(dataset, config.data)
        if config.train.hard_negatives:
            read_attribute_words(config.data.attribute_words)
        print("configuration:")
        print(config.to_json())
        print(summary.format())
        if config.train.hard_negatives:
            attribute_words(dataset.train, config.data, announce=True)
        return 0

    if config.train.strategy == "multiworker" and not (args.out or args.resume):
        # Each worker would pick its own next free runs/<preset>-<n>.
        raise UserInputError("--strategy multiworker needs --out RUN (or --resume RUN): the same "
                             "folder on a disk every worker shares.")
    from tf_t2i.training import run_training
    run_dir = args.resume or args.out or next_run_dir("runs", config.name)
    run_training(config, run_dir, resume=bool(args.resume), export=not args.no_export)
    return 0


def main(argv: list[str] | None = None) -> None:
    sys.exit(run_cli(_main, argv))

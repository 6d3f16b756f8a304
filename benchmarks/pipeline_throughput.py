"""Input pipeline throughput: images/s of `make_train_dataset`, first epoch vs cached epochs.

The first epoch decodes (or, for synthetic data, converts) every image, resizes it to the load
size and fills the cache; later epochs only read the cache, crop, flip, pick captions and pair
wrong captions. The bar (docs/BENCHMARKS.md) is >= 1,000 images/s on cached epochs at 64 px.

Examples (from the repository root):

    python benchmarks/pipeline_throughput.py                     # built-in synthetic, 64 px
    python benchmarks/pipeline_throughput.py --files 3000        # 3000 500x375 JPEGs, Reed layout
    python benchmarks/pipeline_throughput.py --format reed --data /data/flowers

An epoch is len(train) // batch_size batches. No model runs: this measures the input side only.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from tf_t2i.cli.errors import run_cli  # noqa: E402
from tf_t2i.config import DataConfig  # noqa: E402
from tf_t2i.data.load_dataset import load_dataset  # noqa: E402
from tf_t2i.errors import UserInputError  # noqa: E402

BAR_IMAGES_PER_SECOND = 1000


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pipeline_throughput.py",
        description="Time the tf.data training pipeline: first epoch (decode + cache) and "
                    "cached epochs, in images/s.")
    parser.add_argument("--format", choices=("synthetic", "reed", "jsonl"), default="synthetic",
                        help="dataset layout (default: %(default)s).")
    parser.add_argument("--data", help="dataset folder (reed or jsonl; not with --files).")
    parser.add_argument("--files", type=int, default=0, metavar="N",
                        help="write N JPEGs of --file-size into a temporary folder in the layout "
                             "of --format (reed by default) and read them, to measure decoding "
                             "from files.")
    parser.add_argument("--file-size", default="500x375", metavar="WxH",
                        help="size of the --files images (default: %(default)s, like Oxford-102).")
    parser.add_argument("--keep-files", metavar="DIR",
                        help="write the --files images to DIR and keep them (reused if DIR "
                             "already holds a dataset of that size).")
    parser.add_argument("--image-size", type=int, default=64, choices=(32, 64, 128))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3, help="epochs to time (>= 2).")
    parser.add_argument("--images-per-class", type=int, default=40,
                        help="synthetic images per class (default: %(default)s; 168 classes).")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def machine_line() -> str:
    """CPUs available to this process, CPU model, RAM, TensorFlow version, load average."""
    import tensorflow as tf

    model = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next((line.split(":", 1)[1].strip() for line in f
                          if line.startswith("model name")), model)
    ram = "? GiB"
    with contextlib.suppress(OSError, StopIteration, ValueError):
        with open("/proc/meminfo", encoding="utf-8") as f:
            kib = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
        ram = f"{kib / 2**20:.1f} GiB"
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"machine: {cpus} CPUs ({model}), {ram} RAM, Python {platform.python_version()}, "
            f"TensorFlow {tf.__version__}, {load_line()}")


def load_line() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def _parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
        if width < 8 or height < 8:
            raise ValueError
    except ValueError:
        raise UserInputError(f"--file-size {text}: write WIDTHxHEIGHT in pixels, each >= 8, "
                             f"e.g. 500x375.") from None
    return width, height


def _photo_like(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A smooth random colour field with mild noise: JPEGs of photo-like size and decode cost."""
    width, height = size
    coarse = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    image = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC),
                       dtype=np.int16)
    image += rng.integers(-12, 13, size=image.shape, dtype=np.int16)
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))


def write_file_dataset(root: str, data_format: str, count: int, size: tuple[int, int],
                       seed: int) -> None:
    """Writes `count` JPEGs with 10 captions each in the reed (flat jpg/) or jsonl layout.

    20 classes, every fifth one a test class (Reed-style class-disjoint split).
    """
    import json

    rng = np.random.default_rng(seed)
    classes = [f"class_{c + 1:05d}" for c in range(20)]
    test = classes[4::5]
    jsonl_lines = []
    for i in range(count):
        class_name = classes[i % len(classes)]
        stem = f"image_{i + 1:05d}"
        relative = os.path.join("jpg", stem + ".jpg")
        os.makedirs(os.path.join(root, "jpg"), exist_ok=True)
        _photo_like(rng, size).save(os.path.join(root, relative), quality=90)
        captions = [f"this flower {stem} of {class_name} has {j + 3} round petals and a "
                    f"bright centre" for j in range(10)]
        if data_format == "reed":
            folder = os.path.join(root, "text_c10", class_name)
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, stem + ".txt"), "w", encoding="utf-8") as f:
                f.write("\n".join(captions) + "\n")
        else:
            jsonl_lines.append(json.dumps({"file_name": relative, "text": captions,
                                           "label": class_name,
                                           "split": "test" if class_name in test else "train"}))
    if data_format == "reed":
        for name, listed in (("allclasses.txt", classes), ("testclasses.txt", test),
                             ("trainvalclasses.txt", [c for c in classes if c not in test])):
            with open(os.path.join(root, name), "w", encoding="utf-8") as f:
                f.write("\n".join(listed) + "\n")
    else:
        with open(os.path.join(root, "captions.jsonl"), "w", encoding="utf-8") as f:
            f.write("\n".join(jsonl_lines) + "\n")


def _existing_file_count(root: str) -> int:
    folder = os.path.join(root, "jpg")
    return len(os.listdir(folder)) if os.path.isdir(folder) else 0


def _resolve(args: argparse.Namespace) -> argparse.Namespace:
    """Checks flag combinations; returns args with `format` set for --files."""
    if args.epochs < 2:
        raise UserInputError(f"--epochs {args.epochs}: use at least 2, the first epoch decodes "
                             f"and caches and only later ones measure the cached pipeline.")
    if args.batch_size < 2:
        raise UserInputError(f"--batch-size {args.batch_size}: use at least 2.")
    if args.files:
        if args.data:
            raise UserInputError("--files writes its own dataset: drop --data, or drop --files "
                                 "to read the folder given.")
        if args.files < 0:
            raise UserInputError(f"--files {args.files}: give a positive number of images.")
        if args.format == "synthetic":
            args.format = "reed"
    elif args.format != "synthetic" and not args.data:
        raise UserInputError(f"--format {args.format} needs --data DIR (or --files N to write "
                             f"a dataset of N JPEGs).")
    elif args.format == "synthetic" and args.data:
        raise UserInputError("--data was given with --format synthetic: add --format reed or "
                             "--format jsonl.")
    return args


def time_epochs(dataset, batches_per_epoch: int, epochs: int, batch_size: int) -> list[float]:
    """Seconds for each of `epochs` consecutive runs of `batches_per_epoch` batches."""
    iterator = iter(dataset)
    seconds = []
    for epoch in range(epochs):
        start = time.perf_counter()
        for _ in range(batches_per_epoch):
            next(iterator)
        seconds.append(time.perf_counter() - start)
        rate = batches_per_epoch * batch_size / seconds[-1]
        kind = "decode + cache" if epoch == 0 else "cached"
        print(f"epoch {epoch + 1} ({kind}): {batches_per_epoch} batches, "
              f"{batches_per_epoch * batch_size} images in {seconds[-1]:.2f} s = "
              f"{rate:,.0f} images/s", flush=True)
    return seconds


def _main(argv: list[str] | None) -> int:
    args = _resolve(build_parser().parse_args(argv))
    print(" ".join(["python", "benchmarks/pipeline_throughput.py"] + list(
        sys.argv[1:] if argv is None else argv)))
    print(machine_line(), flush=True)

    from tf_t2i.data.caption_encoder import CaptionEncoder
    from tf_t2i.data.pipeline import make_train_dataset

    temporary = None
    path = args.data
    if args.files:
        size = _parse_size(args.file_size)
        path = args.keep_files or tempfile.mkdtemp(prefix="t2i_bench_")
        temporary = None if args.keep_files else path
        if _existing_file_count(path) != args.files:
            if args.keep_files and os.path.exists(path) and os.listdir(path):
                raise UserInputError(f"--keep-files {path} is not empty and does not hold "
                                     f"{args.files} images: pass an empty or new folder.")
            start = time.perf_counter()
            write_file_dataset(path, args.format, args.files, size, args.seed)
            print(f"wrote {args.files} JPEGs of {size[0]}x{size[1]} to {path} in "
                  f"{time.perf_counter() - start:.1f} s")
    try:
        config = DataConfig(format=args.format, path=path, image_size=args.image_size,
                            batch_size=args.batch_size, seed=args.seed,
                            synthetic_images_per_class=args.images_per_class)
        start = time.perf_counter()
        index = load_dataset(config)
        scan_seconds = time.perf_counter() - start
        train = index.train
        batches = len(train) // config.batch_size
        if batches < 1:
            raise UserInputError(f"the train split has {len(train)} images, fewer than one batch "
                                 f"of {config.batch_size}: lower --batch-size or add images.")
        source = "in memory" if train.images is not None else "JPEG/PNG files"
        print(f"data: {index.name}, {len(train)} train images ({source}), "
              f"{args.image_size} px crops of {config.load_size} px, batch {config.batch_size}, "
              f"{batches} batches per epoch, {os.cpu_count()} CPUs visible to tf.data")
        start = time.perf_counter()
        encoder = CaptionEncoder(config.alphabet, config.caption_length)
        dataset = make_train_dataset(train, config, encoder)
        print(f"scan: {scan_seconds:.2f} s; pipeline build (caption encoding): "
              f"{time.perf_counter() - start:.2f} s", flush=True)
        seconds = time_epochs(dataset, batches, args.epochs, config.batch_size)
    finally:
        if temporary:
            shutil.rmtree(temporary, ignore_errors=True)

    images = batches * config.batch_size
    cached = [images / s for s in seconds[1:]]
    verdict = "met" if min(cached) >= BAR_IMAGES_PER_SECOND else "NOT met"
    print(f"summary: first epoch {images / seconds[0]:,.0f} images/s; cached epochs "
          f"2-{args.epochs}: {images * len(cached) / sum(seconds[1:]):,.0f} images/s overall, "
          f"slowest {min(cached):,.0f}; bar >= {BAR_IMAGES_PER_SECOND:,} images/s: {verdict} "
          f"({load_line()})")
    return 0


def main(argv: list[str] | None = None) -> None:
    sys.exit(run_cli(_main, argv))


if __name__ == "__main__":
    main()

"""Caption fidelity of a run trained on the built-in synthetic dataset, attribute by attribute.

    python benchmarks/caption_fidelity.py RUN_DIR [--captions 512] [--images-per-caption 4]
                                                  [--seed 0]

Draws images for captions of seen classes (train split) and of unseen attribute combinations
(test split: colour pairings never seen in training), reads their attributes back from the pixels
(tf_t2i.evaluation.synthetic_attributes) and prints, per attribute, the share of images that show
what the caption says. Columns:
    real ceiling   the same read-back on the real images the captions describe (seen and unseen
                   pooled): what a perfect generator would score.
    seen / unseen  generated images; only captions that mention the attribute count (n: captions).
    chance         1 / number of values.
    indep. s/u     the score if what the generator draws were independent of the caption, given
                   how often it draws each value (seen / unseen): a generator that ignores the
                   text scores about this, whatever its favourite colour.
colour pair = petal and centre colour both right: the zero-shot composition test.
The last line measures speckle: the generated images' high-frequency energy (mean absolute
difference of neighbouring pixels) over the real images', and the share of noise-like images
(rougher than 1.25x the real images' 99th percentile).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a run folder written by train.py (synthetic dataset).")
    parser.add_argument("--captions", type=int, default=512,
                        help="captions per split (%(default)s).")
    parser.add_argument("--images-per-caption", type=int, default=4,
                        help="images drawn per caption, each with its own noise (%(default)s).")
    parser.add_argument("--seed", type=int, default=0, help="caption choice and noise seed.")
    args = parser.parse_args(argv)

    from tf_t2i.cpu_kernels import enable_onednn

    enable_onednn()  # the kernels train.py trained with, before TensorFlow starts
    import tensorflow as tf  # after argparse: --help stays fast

    from tf_t2i.evaluation.caption_fidelity import SCORED, attribute_accuracy
    from tf_t2i.runs import load_run

    started = time.perf_counter()
    run = load_run(args.run_dir)
    results = {split: attribute_accuracy(run, split, images_per_caption=args.images_per_caption,
                                         max_captions=args.captions, seed=args.seed)
               for split in ("train", "test")}
    seconds = time.perf_counter() - started

    print(f"date: {datetime.datetime.now().isoformat(timespec='seconds')}")
    print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cpus, "
          f"python {platform.python_version()}, tensorflow {tf.__version__}")
    step = run.record.get("step"), run.record.get("style_step")
    print(f"run: {os.path.abspath(args.run_dir)} (preset {run.config.name}, "
          f"{run.config.data.image_size} px, GAN step {step[0]}, style step {step[1]})")
    seen, unseen = results["train"], results["test"]
    print(f"captions: {seen['num_captions']} seen + {unseen['num_captions']} unseen, "
          f"{args.images_per_caption} images each, seed {args.seed}; {seconds:.1f} s")
    print()
    header = (f"{'attribute':<14} {'real ceiling':>12} {'seen':>13} {'unseen':>13} {'chance':>7} "
              f"{'indep. s/u':>11}")
    print(header)
    print("-" * len(header))
    for name in SCORED:
        s, u = seen["attributes"][name], unseen["attributes"][name]
        mentioned = s["mentioned"] + u["mentioned"]
        ceiling = ((s["real_ceiling"] * s["mentioned"] + u["real_ceiling"] * u["mentioned"])
                   / mentioned if mentioned else float("nan"))
        independent = f"{s['chance']:.2f}/{u['chance']:.2f}"
        print(f"{name.replace('_', ' '):<14} {ceiling:>12.3f} {_cell(s):>13} {_cell(u):>13} "
              f"{s['uniform_chance']:>7.3f} {independent:>11}")
    print()
    print(f"speckle: high-frequency energy / real's {seen['speckle']['energy_ratio']:.2f} seen, "
          f"{unseen['speckle']['energy_ratio']:.2f} unseen; noise-like images "
          f"{seen['speckle']['noise_like']:.3f} seen, {unseen['speckle']['noise_like']:.3f} unseen")


def _cell(entry: dict) -> str:
    return f"{entry['accuracy']:.3f} (n={entry['mentioned']})"


if __name__ == "__main__":
    main()

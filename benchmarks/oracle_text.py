"""The GAN trained on perfect text: what G and D compose when the text encoder is not in the way.

    python benchmarks/oracle_text.py --out runs/oracle [--preset default] [--seed 0]
        [--steps 2000] [--set SECTION.FIELD=VALUE ...] [--captions 512]

Trains the preset's GAN stage on the built-in dataset with every caption's embedding replaced by
its attribute code (`tf_t2i.evaluation.oracle_text.OracleText`: one-hot petal colour, centre
colour, count and background, read from the caption by the templates that wrote it; captions are
kept whole, at 160 characters), then draws images for
captions of seen classes and of unseen colour pairs from the same code and reads their attributes
back (`attribute_accuracy`, the caption-fidelity benchmark's scoring). The encoders warm up for
one step only and are frozen: the code does their job. Hard negative captions are off (their
swapped words make sentences no template wrote, which the code cannot read), so D's wrong texts
are other images' captions, as in Reed's design. No style stage, no metrics during training, no
export.

The run folder's generator follows the code, not captions: `evaluate.py` on it draws through the
learned text encoder, which this training never used, so only this script scores it.

Compare its colour-pair scores with `benchmarks/caption_fidelity.py` on a run of the same preset
and seed: the gap on unseen pairs is what the text encoder loses; what is left below the bar is
the generator's and discriminator's. The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.ablation import machine  # noqa: E402  (after the path set-up above)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="the run folder to train (must be new).")
    parser.add_argument("--preset", default="default", help="named configuration (default).")
    parser.add_argument("--seed", type=int, default=0, help="data.seed (%(default)s).")
    parser.add_argument("--steps", type=int, help="GAN steps (default: the preset's).")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.FIELD=VALUE", help="config override (repeatable).")
    parser.add_argument("--captions", type=int, default=512,
                        help="captions scored per split (%(default)s).")
    parser.add_argument("--images-per-caption", type=int, default=4,
                        help="images drawn per caption (%(default)s).")
    args = parser.parse_args(argv)

    from tf_t2i.cpu_kernels import enable_onednn

    enable_onednn()
    import numpy as np
    import tensorflow as tf

    from tf_t2i.config import apply_overrides, get_preset
    from tf_t2i.data.caption_encoder import CaptionEncoder
    from tf_t2i.data.synthetic import load_synthetic
    from tf_t2i.errors import UserInputError
    from tf_t2i.evaluation.caption_fidelity import attribute_accuracy
    from tf_t2i.evaluation.oracle_text import OracleText
    from tf_t2i.image_grid import to_uint8
    from tf_t2i.runs import load_run
    from tf_t2i.training import run_training

    try:
        config = oracle_config(get_preset(args.preset), args, apply_overrides)
    except (KeyError, ValueError, UserInputError) as error:
        raise SystemExit(f"error: {error}") from None
    oracle = OracleText(config.model.embedding_dim)
    encoder = CaptionEncoder(config.data.alphabet, config.data.caption_length)

    def embed_captions(caption_ids):
        return oracle.codes(encoder.decode(caption_ids))

    started = time.perf_counter()
    run_training(config, args.out, export=False, embed_captions=embed_captions)
    train_seconds = time.perf_counter() - started

    run = load_run(args.out)
    generator = run.gan.sampling_generator
    dataset = load_synthetic(image_size=config.data.image_size,
                             images_per_class=config.data.synthetic_images_per_class,
                             seed=config.data.seed)

    class OracleSource:
        """`attribute_accuracy`'s model interface, drawing from the captions' codes."""
        z_dim = run.gan.z_dim

        @staticmethod
        def generate_from_noise(captions, noise):
            codes = oracle.codes(captions)
            images = [to_uint8(np.asarray(generator((noise[i:i + 256], codes[i:i + 256]),
                                                    training=False), np.float32))
                      for i in range(0, len(codes), 256)]
            return np.concatenate(images)

    scores = {split: attribute_accuracy(OracleSource, split,
                                        images_per_caption=args.images_per_caption,
                                        max_captions=args.captions, dataset=dataset)["attributes"]
              for split in ("train", "test")}

    print(f"date: {datetime.datetime.now().isoformat(timespec='seconds')}")
    print(f"machine: {machine()}, python {platform.python_version()}, "
          f"tensorflow {tf.__version__}")
    print(f"run: {os.path.abspath(args.out)} (preset {args.preset}, seed {args.seed}, "
          f"{config.train.steps} GAN steps, overrides {args.overrides}); trained in "
          f"{train_seconds / 60:.1f} min")
    print(f"{'attribute':<14} {'seen':>7} {'unseen':>7}")
    for name in ("petal_colour", "centre_colour", "petal_count", "colour_pair"):
        print(f"{name.replace('_', ' '):<14} {scores['train'][name]['accuracy']:>7.3f} "
              f"{scores['test'][name]['accuracy']:>7.3f}")
    print(json.dumps({
        "preset": args.preset, "seed": args.seed, "steps": config.train.steps,
        "overrides": args.overrides, "train_minutes": round(train_seconds / 60, 2),
        **{f"{split}_{name}": round(scores[key][name]["accuracy"], 4)
           for split, key in (("seen", "train"), ("unseen", "test"))
           for name in ("petal_colour", "centre_colour", "petal_count", "colour_pair")}}))


def oracle_config(config, args, apply_overrides):
    """The preset with the command's overrides, made to train on the oracle code: synthetic data,
    encoders warmed up one step and frozen, no hard negatives, no style stage, metrics or best
    checkpoint."""
    # The code is read from the captions as the pipeline encodes them, so none may be cut short
    # (the longest built-in caption has about 120 characters; the tiny preset keeps 64).
    data = dataclasses.replace(config.data, format="synthetic", seed=args.seed,
                               caption_length=max(config.data.caption_length, 160))
    train = config.train if args.steps is None else dataclasses.replace(
        config.train, steps=args.steps, epochs=0)
    config = apply_overrides(dataclasses.replace(config, data=data, train=train), args.overrides)
    train = dataclasses.replace(config.train, encoder_warmup_steps=1, freeze_encoders=True,
                                style_steps=0, eval_every=0, best_metric="",
                                hard_negative_weight=0.0, hard_negative_wrong_fraction=0.0,
                                hard_negative_check_weight=0.0, recombined_text_weight=0.0)
    return dataclasses.replace(config, train=train).validate()


if __name__ == "__main__":
    main()

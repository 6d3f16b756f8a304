"""Nearest-neighbour upsampling + 3x3 conv: UpSampling2D + Conv2D against NearestUpsamplingConv2D.

    python benchmarks/upsampling_layer.py                        # G's output layer in `default`
    python benchmarks/upsampling_layer.py --shape 128 8 8 192 --filters 96
    ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/upsampling_layer.py   # as on a CPU without AVX-512

Both compute the same function with the same weights (checked here: the largest difference is
printed). Each is timed forward and backward (gradients for the input, kernel and bias) in one
tf.function, alternating, after warm-up calls; `--repeats` rounds give a spread. The default
shape is the generator's last layer in the `default` preset (ngf 32): 128 rows (64 texts, 32
interpolated, 32 mode-seeking twins) of 16x16x64 features to a 32x32 RGB image.
`gflops_forward_backward` counts the upsampled 3x3 convolution (9 taps per output pixel);
NearestUpsamplingConv2D does 4/9 of that. The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.train_step import cpu_description  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="upsampling_layer.py",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", type=int, nargs=4, default=[128, 16, 16, 64],
                        metavar=("BATCH", "HEIGHT", "WIDTH", "CHANNELS"))
    parser.add_argument("--filters", type=int, default=3)
    parser.add_argument("--calls", type=int, default=20, help="timed calls per round.")
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds.")
    return parser


def run(args) -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    from tf_t2i.models.nearest_upsampling_conv2d import NearestUpsamplingConv2D

    inputs = tf.random.stateless_normal(args.shape, seed=[0, 0])
    phases = NearestUpsamplingConv2D(args.filters, bias_initializer="random_normal")
    phases(inputs)
    convolution = keras.layers.Conv2D(args.filters, 3, padding="same")
    convolution.build((None, 2 * args.shape[1], 2 * args.shape[2], args.shape[3]))
    convolution.set_weights(phases.get_weights())
    upsampling = keras.layers.UpSampling2D(2)
    layers = {"upsampling_then_conv": (lambda x: convolution(upsampling(x)), convolution),
              "nearest_upsampling_conv2d": (phases, phases)}
    difference = float(np.max(np.abs(layers["upsampling_then_conv"][0](inputs)
                                     - phases(inputs))))

    def forward_backward(layer, owner):
        @tf.function
        def step():
            with tf.GradientTape() as tape:
                tape.watch(inputs)
                loss = tf.reduce_sum(tf.square(layer(inputs)))
            return tape.gradient(loss, [inputs, *owner.trainable_weights])
        return step

    steps = {name: forward_backward(*pair) for name, pair in layers.items()}
    for step in steps.values():
        step(), step()
    times = {name: [] for name in steps}
    for _ in range(args.repeats):
        for name, step in steps.items():
            started = time.perf_counter()
            for _ in range(args.calls):
                [gradient.numpy() for gradient in step()]
            times[name].append((time.perf_counter() - started) / args.calls * 1000)
    batch, height, width, channels = args.shape
    flops = 2 * batch * (2 * height) * (2 * width) * 9 * channels * args.filters * 3
    result = {"shape": args.shape, "filters": args.filters, "max_abs_difference": difference,
              "gflops_forward_backward": float(f"{flops / 1e9:.4g}")}
    for name, values in times.items():
        result[f"{name}_ms"] = [round(v, 1) for v in values]
    result["speedup"] = round(min(times["upsampling_then_conv"])
                              / min(times["nearest_upsampling_conv2d"]), 2)
    result["load_average"] = [round(v, 2) for v in os.getloadavg()]
    result.update(cpu_description())
    result["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="minutes")
    return result


def main(argv=None) -> None:
    print(json.dumps(run(build_parser().parse_args(argv))))


if __name__ == "__main__":
    main()

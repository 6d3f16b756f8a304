"""Training step speed: steady-state s/step, images/s and GFLOP/s against this machine's ceilings.

    python benchmarks/train_step.py --preset default
    python benchmarks/train_step.py --preset flowers64 --batch-size 64 --precision float32
    python benchmarks/train_step.py --set train.latent_regression_weight=0.5   # an option on
    ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/train_step.py   # as on a CPU without AVX-512 (fp32)

Times the production path: `StageLoop`'s compiled call (`steps_per_execution` steps of
`TextToImageGAN.train_step` in a graph loop) on the real input pipeline of the built-in dataset,
after warm-up calls. Besides the step it measures, in the same run:
  * the FLOPs of one full step (encoder step + D step + G step with GAN-INT): TensorFlow's graph
    profiler counts every op it has a FLOP rule for; it does not see inside the GRU's while loop,
    whose matrix products are added analytically (x3 for forward + backward). Where the preset
    freezes the encoders after a warm-up, the pipeline embeds every caption once, as in
    training: the step holds no encoder work and `embedding_table_s` is that one-off cost;
  * fp32 and bf16 matmul (1024^3) and 3x3 conv (64x16x16x192 -> 192) ceilings, each in a
    subprocess (a bf16 kernel oneDNN cannot build aborts the process), so achieved GFLOP/s is a
    ratio to what this machine does right now;
  * a per-phase split (encoder step, D step, G step, each compiled alone); the encoder step is
    also what one step of the encoder warm-up stage costs (`train.encoder_warmup_steps`);
  * the input pipeline alone, in images/s, against the step's;
  * the load average before and after, the CPU model and its AVX-512/AMX flags, peak RSS.
The last line is one JSON object with every figure.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import re
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tf_t2i.config import PRECISIONS, PRESETS, Config, apply_overrides, get_preset  # noqa: E402
from tf_t2i.cpu_kernels import ONEDNN_VARIABLE, enable_onednn  # noqa: E402

CEILING_KINDS = ("float32", "bfloat16")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="train_step.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="default", choices=sorted(PRESETS))
    parser.add_argument("--batch-size", type=int, help="default: the preset's.")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto")
    parser.add_argument("--jit-compile", action="store_true", help="compile the step with XLA.")
    parser.add_argument("--steps-per-execution", type=int, default=5)
    parser.add_argument("--calls", type=int, default=4, help="timed compiled calls.")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.FIELD=VALUE",
                        help="override one field of the preset, as train.py's --set; repeatable.")
    parser.add_argument("--skip-ceilings", action="store_true")
    parser.add_argument("--ceiling", choices=CEILING_KINDS, help=argparse.SUPPRESS)
    return parser


def cpu_description() -> dict:
    """The CPU's model name and its AVX-512 / AMX flags (what speed figures depend on)."""
    model, flags = "unknown", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            text = f.read()
        model = re.search(r"model name\s*:\s*(.*)", text).group(1).strip()
        flags = set(re.findall(r"\b(avx512[a-z_0-9]*|amx[a-z_0-9]*)\b", text))
    except (OSError, AttributeError):
        pass
    return {"cpu": model, "cpu_flags": sorted(flags), "cores": os.cpu_count(),
            "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
            "onednn_opts": os.environ.get(ONEDNN_VARIABLE)}


def measure_ceiling(kind: str) -> dict:
    """GFLOP/s of a 1024^3 matmul and a 3x3 conv in `kind` (run in a subprocess)."""
    import tensorflow as tf

    dtype = tf.as_dtype(kind)
    a = tf.cast(tf.random.normal([1024, 1024]), dtype)
    x = tf.cast(tf.random.normal([64, 16, 16, 192]), dtype)
    w = tf.cast(tf.random.normal([3, 3, 192, 192]), dtype)
    kernels = {"matmul": (tf.function(lambda: tf.matmul(a, a)), 2 * 1024 ** 3),
               "conv": (tf.function(lambda: tf.nn.conv2d(x, w, 1, "SAME")),
                        2 * 64 * 16 * 16 * 192 * 192 * 9)}
    result = {}
    for name, (fn, flops) in kernels.items():
        fn().numpy()
        repeats, started = 0, time.perf_counter()
        while time.perf_counter() - started < 1.0:
            fn().numpy()
            repeats += 1
        result[name] = round(flops * repeats / (time.perf_counter() - started) / 1e9, 1)
    return result


def ceilings() -> dict:
    out = {}
    for kind in CEILING_KINDS:
        done = subprocess.run([sys.executable, __file__, "--ceiling", kind], capture_output=True,
                              text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        lines = done.stdout.strip().splitlines()
        out[kind] = json.loads(lines[-1]) if done.returncode == 0 and lines else None
    return out


def step_flops(gan, batch, config) -> float:
    """FLOPs of one train step: the graph profiler's count plus the GRU's matrix products."""
    import tensorflow as tf
    from tensorflow.python.profiler import model_analyzer, option_builder

    from tf_t2i.training import conditioning_data

    specs = {k: tf.TensorSpec(v.shape, v.dtype) for k, v in batch.items()}
    graph = tf.function(gan.train_step).get_concrete_function(specs).graph
    options = option_builder.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    counted = model_analyzer.profile(graph=graph, options=options).total_float_ops
    if not gan.train_encoders:
        return float(counted)  # The pipeline embedded the captions once: no GRU in the step.
    encoder = gan.text_encoder
    steps = config.data.caption_length // 3 ** (len(encoder.conv_filters) - 1)
    inputs = encoder.conv_filters[-1]
    captions = config.data.batch_size * conditioning_data(config).captions_per_image
    if config.train.hard_negatives:
        captions *= 2  # The encoder step also embeds each caption's hard negative.
    # Forward and backward (x3).
    gru = 3 * captions * steps * 3 * 2 * (inputs + encoder.rnn_units) * encoder.rnn_units
    return float(counted + gru)


def benchmark_config(args) -> Config:
    """The preset with the --set overrides, --batch-size and --precision (`auto` unresolved), on
    the built-in dataset: timing a paper preset's step needs no dataset folder."""
    config = apply_overrides(get_preset(args.preset), args.overrides)
    data = dataclasses.replace(config.data, format="synthetic", path=None,
                               batch_size=args.batch_size or config.data.batch_size)
    train = dataclasses.replace(config.train, precision=args.precision,
                                jit_compile=args.jit_compile)
    return dataclasses.replace(config, data=data, train=train).validate()


def timed(fn, calls) -> float:
    """Mean seconds per call after two warm-up calls."""
    fn(), fn()
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls


def run(args) -> dict:
    import keras
    import tensorflow as tf

    from tf_t2i.data.attribute_words import attribute_words
    from tf_t2i.data.caption_encoder import CaptionEncoder
    from tf_t2i.data.load_dataset import load_dataset
    from tf_t2i.data.pipeline import make_train_dataset
    from tf_t2i.runs import build_gan, with_resolved_precision
    from tf_t2i.stage_loop import compile_steps
    from tf_t2i.training import conditioning_data

    config = with_resolved_precision(benchmark_config(args))
    keras.mixed_precision.set_global_policy(config.train.precision)
    load_before = os.getloadavg()
    encoder = CaptionEncoder(config.data.alphabet, config.data.caption_length)
    split = load_dataset(config.data).train
    words = attribute_words(split, config.data) if config.train.hard_negatives else None
    # A warm-up batch (caption ids, data.captions_per_image each) for the encoder phase.
    batch = next(iter(make_train_dataset(split, config.data, encoder, attribute_words=words)))
    gan = build_gan(config, encoder.vocabulary_size, steps_per_epoch=100)
    # As in training: the GAN stage's batches carry `train.conditioning_captions` captions per
    # image, and where the GAN step does not train the encoders, the pipeline embeds every
    # caption once (a cost per run, timed apart from the step).
    started = time.perf_counter()
    stream = make_train_dataset(
        split, conditioning_data(config), encoder, attribute_words=words,
        embed_captions=None if gan.train_encoders else gan.embed_caption_table)
    table_s = None if gan.train_encoders else time.perf_counter() - started

    completed = tf.Variable(0, dtype=tf.int64)
    diverged_at = tf.Variable(0, dtype=tf.int64)
    run_steps = compile_steps(gan.train_step, tf.distribute.get_strategy(),
                              config.train.jit_compile, completed, diverged_at)
    iterator = iter(stream)
    count = tf.constant(args.steps_per_execution, tf.int64)
    started = time.perf_counter()
    run_steps(iterator, count)
    first_call = time.perf_counter() - started
    s_per_step = timed(lambda: (run_steps(iterator, count), completed.numpy()),
                       args.calls) / args.steps_per_execution

    phase = {
        "encoder": tf.function(lambda: gan._encoder_step(
            batch["images"], batch["captions"], batch["labels"],
            batch.get("hard_negative_captions"))[0]),
    }
    embeddings = phase["encoder"]()
    wrong_embeddings = tf.gather(embeddings, batch["wrong_indices"])
    phase["discriminator"] = tf.function(lambda: gan._discriminator_step(
        batch["images"], embeddings, wrong_embeddings) or tf.constant(0))
    phase["generator"] = tf.function(
        lambda: gan._generator_step(embeddings, batch["images"]) or tf.constant(0))
    phases = {name: round(timed(lambda fn=fn: fn().numpy(), args.calls), 4)
              for name, fn in phase.items()}

    pipeline_iterator = iter(stream)
    pipeline_s = timed(lambda: next(pipeline_iterator)["images"].numpy(), 20)
    flops = step_flops(gan, next(iter(stream)), config)
    batch_size = config.data.batch_size
    result = {
        "preset": args.preset, "overrides": args.overrides, "batch_size": batch_size, "precision": config.train.precision,
        "precision_requested": args.precision, "jit_compile": config.train.jit_compile,
        "steps_per_execution": args.steps_per_execution,
        "s_per_step": round(s_per_step, 4), "images_per_s": round(batch_size / s_per_step, 2),
        "first_call_s": round(first_call, 1),
        "embedding_table_s": None if table_s is None else round(table_s, 1),
        "gflops_per_step": round(flops / 1e9, 2),
        "flops_counted_by": ("tf graph profiler + analytic GRU" if gan.train_encoders
                             else "tf graph profiler (no encoder work in the step)"),
        "achieved_gflops_per_s": round(flops / s_per_step / 1e9, 1),
        "phase_s": phases,
        "pipeline_images_per_s": round(batch_size / pipeline_s, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    if not args.skip_ceilings:
        result["ceilings_gflops_per_s"] = ceilings()
        compute = "bfloat16" if "bfloat16" in config.train.precision else "float32"
        ceiling = (result["ceilings_gflops_per_s"].get(compute) or {}).get("conv")
        result["share_of_conv_ceiling"] = (round(result["achieved_gflops_per_s"] / ceiling, 2)
                                           if ceiling else None)
    result["load_average"] = {"before": [round(v, 2) for v in load_before],
                              "after": [round(v, 2) for v in os.getloadavg()]}
    result.update(cpu_description())
    result["date"] = datetime.date.today().isoformat()
    return result


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    enable_onednn()  # as train.py does, before TensorFlow starts (tf_t2i.cpu_kernels)
    if args.ceiling:
        print(json.dumps(measure_ceiling(args.ceiling)))
        return
    result = run(args)
    print(f"{result['preset']} batch {result['batch_size']} {result['precision']}: "
          f"{result['s_per_step']} s/step, {result['images_per_s']} images/s, "
          f"{result['achieved_gflops_per_s']} GFLOP/s of {result['gflops_per_step']} GFLOP/step")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

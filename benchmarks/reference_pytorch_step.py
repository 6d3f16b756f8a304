"""PyTorch reference: Reed's 64x64 GAN-INT-CLS step on precomputed text embeddings, timed.

    pip install torch     # the CPU build; for this benchmark only, tf_t2i does not need it
    python benchmarks/reference_pytorch_step.py                   # batch 64, every core
    python benchmarks/reference_pytorch_step.py --steps 3 --threads 2
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \\
        python benchmarks/reference_pytorch_step.py               # as on a CPU without AVX-512

Issue 7's bar compares `benchmarks/train_step.py --preset flowers64 --batch-size 64 --precision
float32` with "a PyTorch GAN-INT-CLS port (residual, transposed convs; text embeddings
precomputed)" on the same machine: this script is that port's step, side by side. The networks
mirror `flowers64`'s (`benchmarks/torch_reference`: the same layers, widths, kernels, BatchNorms
and activations; z 100, text 1024 projected to 128, ngf 128, ndf 64, transposed convolutions),
and one step is what `tf_t2i.gan.TextToImageGAN.train_step` runs after its encoder step
(`torch_reference.gan_int_cls_step.GanIntClsStep`). Real images and the right and wrong text
embeddings are random tensors of the right shapes, made once; the noise is drawn every step.
PyTorch 2.13 runs eagerly (no torch.compile) in float32, NCHW, one step per Python call. To
imitate a CPU without AVX-512 or AMX, cap all three of PyTorch's CPU back ends (ATen's vector
kernels, oneDNN's convolutions, MKL's matrix products), as in the third command above.

What differs from our flowers64 step (train_step.py) and why:
  * No text or image encoder: the port precomputes its text embeddings. So does `flowers64`
    (Reed's pretrained, fixed phi): its encoder warm-up stage trains them, then the pipeline
    embeds every caption once and the GAN step does no encoder work. With
    `--set train.freeze_encoders=false --set train.encoder_warmup_steps=0` ours trains the
    char-CNN-RNN and the image encoder in every step instead (about a third more FLOPs).
  * The wrong texts are given, not gathered from the batch by index; the embeddings are not
    averaged over 4 captions nor rescaled to norm sqrt(1024) (random N(0, 1) rows have about
    that norm). Neither costs measurable time.
  * GAN-INT pairs adjacent examples (2i, 2i + 1), as ours does; Reed's lua pairs i with
    i + batch/2. Same cost.
  * Reed's D step runs D three times (real/right, wrong image/right, fake/right), ours and this
    one compute the real images' features once and score them with the right and the wrong text
    (the wrong text, not Reed's wrong image). Reed's G step computes D's input gradient only
    (`updateGradInput`); here D's weights are frozen during G's backward for the same effect.
  * Timing: eager PyTorch, one Python call per step; ours runs `steps_per_execution` steps in a
    compiled TensorFlow graph loop on the real input pipeline.
  * FLOPs: `torch.utils.flop_counter.FlopCounterMode` counts matrix products and convolutions
    (forward and backward) only. TensorFlow's profiler in train_step.py also counts element-wise
    ops (0.1% here) and every gradient op the tape puts in the graph, used or not: D's weight
    gradients in G's step (23.4 GFLOP at batch 64) and D's input gradient at its first conv in D's
    step (0.9). Set aside, the two agree: the D and G steps are 160.9 + 343.8 = 504.7 GFLOP here
    and 161.8 + 367.3 - 23.4 - 0.9 = 504.8 there (conv and matmul ops, batch 64, 2026-11-30).

The last line is one JSON object: s_per_step, images_per_s, gflops_per_step,
achieved_gflops_per_s, threads, cpu_seconds_per_second (process CPU time over wall time in the
timed steps: about `threads` when every thread computes), the CPU, its AVX-512/AMX flags, load
average and date.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.train_step import cpu_description  # noqa: E402

NO_TORCH = ("benchmarks/reference_pytorch_step.py needs PyTorch, which tf_t2i itself does not: "
            "`pip install torch` (the CPU build) for this benchmark only.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reference_pytorch_step.py",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=64,
                        help="even, >= 2 (GAN-INT pairs adjacent examples).")
    parser.add_argument("--steps", type=int, default=10, help="timed steps.")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first.")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="torch.set_num_threads (default: every core).")
    return parser


def check_args(parser, args) -> None:
    if args.batch_size < 2 or args.batch_size % 2:
        parser.error(f"--batch-size must be even and >= 2, got {args.batch_size}.")
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}.")
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}.")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}.")


def run(args) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from benchmarks.torch_reference.discriminator import Discriminator
    from benchmarks.torch_reference.gan_int_cls_step import GanIntClsStep
    from benchmarks.torch_reference.generator import Generator

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    z_dim, embedding_dim, batch_size = 100, 1024, args.batch_size
    step = GanIntClsStep(Generator(z_dim, embedding_dim, 128, ngf=128),
                         Discriminator(embedding_dim, 128, ndf=64), z_dim)
    images = torch.rand(batch_size, 3, 64, 64) * 2.0 - 1.0
    right_embeddings = torch.randn(batch_size, embedding_dim)
    wrong_embeddings = right_embeddings.roll(1, dims=0)
    batch = (images, right_embeddings, wrong_embeddings)

    load_before = os.getloadavg()
    for _ in range(args.warmup):
        step(*batch)
    cpu_started, started = time.process_time(), time.perf_counter()
    for _ in range(args.steps):
        step(*batch)
    elapsed = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    s_per_step = elapsed / args.steps
    # Counted over one more full step, after the timed ones (the counter slows what it counts).
    with FlopCounterMode(display=False) as counter:
        step(*batch)
    flops = counter.get_total_flops()

    result = {
        "batch_size": batch_size, "steps": args.steps, "warmup": args.warmup,
        "s_per_step": round(s_per_step, 4), "images_per_s": round(batch_size / s_per_step, 2),
        "gflops_per_step": round(flops / 1e9, 2),
        "flops_counted_by": "torch.utils.flop_counter.FlopCounterMode (matmuls and convs, "
                            "forward and backward, over one full step)",
        "achieved_gflops_per_s": round(flops / s_per_step / 1e9, 1),
        "cpu_seconds_per_second": round(cpu_seconds / elapsed, 2),
        "torch_version": torch.__version__, "threads": torch.get_num_threads(),
        # What the AVX2 caps of the docstring's third command set (oneDNN's is in the CPU's).
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkl_enable_instructions": os.environ.get("MKL_ENABLE_INSTRUCTIONS"),
        "load_average": {"before": [round(v, 2) for v in load_before],
                         "after": [round(v, 2) for v in os.getloadavg()]},
    }
    result.update(cpu_description())
    result["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return result


def main(argv=None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    if importlib.util.find_spec("torch") is None:
        sys.exit(f"error: {NO_TORCH}")
    result = run(args)
    print(f"PyTorch {result['torch_version']} GAN-INT-CLS reference, batch "
          f"{result['batch_size']} float32, {result['threads']} threads: "
          f"{result['s_per_step']} s/step, {result['images_per_s']} images/s, "
          f"{result['achieved_gflops_per_s']} GFLOP/s of {result['gflops_per_step']} GFLOP/step")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

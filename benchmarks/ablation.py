"""Ablation of training options on the built-in dataset: same preset, budget and seed per variant.

    python benchmarks/ablation.py --out runs/ablation [--preset default] [--steps 1000]
        [--style-steps 300] [--seed 0] [--num-images 500]
        --variant baseline
        --variant "affine: model.generator_conditioning=affine"
        --variant "both: model.generator_conditioning=affine; train.gan_loss=hinge"

Each variant is `name` or `name: section.field=value; section.field=value` (the `--set`
overrides of `train.py`). For each, in order: `train.py` trains a run in OUT/name (metrics during
training off, so every variant pays the same), then `evaluate.py metrics` scores its test split
(unseen colour pairs) and its train split (seen classes) on the built-in dataset. A variant whose
OUT/name/ablation.json exists is not run again, so an interrupted ablation continues where it
stopped. The last lines are a Markdown table (docs/BENCHMARKS.md) and its JSON.

Columns: wall minutes of the whole run (GAN + style stage + export); petal/centre colour both
right on captions of seen classes and of unseen colour pairs (attribute_accuracy, one image per
caption); style verification AUC for the background and style-transfer background fidelity
(chance 0.25); the share of 50 text interpolations that move monotonically, and of those whose
first and last frames show both captions' colours (seen and unseen pairs averaged); diversity of images
of one caption as a fraction of real images' of one class.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METRICS = ("attribute_accuracy,style_verification,style_transfer_fidelity,"
           "interpolation_monotonicity,diversity")
COLUMNS = ("minutes", "seen_pair", "unseen_pair", "unseen_petal", "unseen_centre", "style_auc_bg",
           "transfer_bg", "interp_monotone", "interp_endpoints", "diversity_ratio")


def parse_variant(text: str) -> tuple[str, list[str]]:
    """"name: a.b=1; c.d=2" -> ("name", ["a.b=1", "c.d=2"])."""
    name, _, overrides = text.partition(":")
    name = name.strip()
    if not re.fullmatch(r"[A-Za-z0-9_.+-]+", name):
        raise SystemExit(f"error: --variant {text!r}: the name before ':' may hold only letters, "
                         "digits and _.+- (it names a run folder).")
    return name, [o.strip() for o in overrides.split(";") if o.strip()]


def machine() -> dict:
    flags = set()
    model = platform.processor()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    flags = {f for f in line.split(":", 1)[1].split()
                             if f.startswith(("avx512", "amx"))}
    except OSError:
        pass
    return {"cpu": model, "cpu_count": os.cpu_count(), "flags": sorted(flags),
            "load_average": os.getloadavg()}


def run(command: list[str], log_path: str) -> float:
    """Runs a command with its output in `log_path`; returns its wall seconds."""
    started = time.perf_counter()
    with open(log_path, "w") as log:
        code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    if code != 0:
        raise SystemExit(f"error: {' '.join(command)} exited with {code}: see {log_path}.")
    return time.perf_counter() - started


def ablate(args, name: str, overrides: list[str]) -> dict:
    run_dir = os.path.join(args.out, name)
    result_path = os.path.join(run_dir, "ablation.json")
    if os.path.exists(result_path):
        with open(result_path) as f:
            return json.load(f)
    os.makedirs(run_dir, exist_ok=True)
    sets = [f"train.steps={args.steps}", f"train.style_steps={args.style_steps}",
            "train.eval_every=0", f"data.seed={args.seed}", *overrides]
    train = [sys.executable, "train.py", "--preset", args.preset, "--out", run_dir]
    for override in sets:
        train += ["--set", override]
    seconds = run(train, os.path.join(run_dir, "ablation-train.log"))
    scores = {}
    for split in ("test", "train"):
        out = os.path.join(run_dir, f"metrics-{split}.json")
        run([sys.executable, "evaluate.py", "metrics", "--model", run_dir, "--format", "synthetic",
             "--split", split, "--metrics", METRICS, "--num-images", str(args.num_images),
             "--seed", str(args.seed), "--out", out],
            os.path.join(run_dir, f"ablation-metrics-{split}.log"))
        with open(out) as f:
            scores[split] = json.load(f)["metrics"]
    result = {"variant": name, "overrides": overrides, "preset": args.preset, "steps": args.steps,
              "style_steps": args.style_steps, "seed": args.seed, "run": run_dir,
              "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "machine": machine(), **summarise(seconds, scores)}
    with open(result_path, "w") as f:
        json.dump(result, f, indent=1)
    return result


def summarise(seconds: float, scores: dict) -> dict:
    test, train = scores["test"], scores["train"]
    unseen = test["attribute_accuracy"]["unseen"]
    return {
        "minutes": seconds / 60,
        "seen_pair": test["attribute_accuracy"]["seen"]["colour_pair"]["accuracy"],
        "unseen_pair": unseen["colour_pair"]["accuracy"],
        "unseen_petal": unseen["petal_colour"]["accuracy"],
        "unseen_centre": unseen["centre_colour"]["accuracy"],
        "style_auc_bg": test["style_verification_auc"]["attributes"]["background"],
        "transfer_bg": test["style_transfer_background"]["accuracy"],
        "interp_monotone": (test["interpolation_monotonicity"]["monotone"]
                            + train["interpolation_monotonicity"]["monotone"]) / 2,
        "interp_endpoints": (test["interpolation_monotonicity"]["endpoints_right"]
                             + train["interpolation_monotonicity"]["endpoints_right"]) / 2,
        "diversity_ratio": test["diversity_pixel_l1"]["ratio"],
    }


def table(results: list[dict]) -> str:
    lines = ["| variant | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for result in results:
        cells = [f"{result[c]:.1f}" if c == "minutes" else f"{result[c]:.3f}" for c in COLUMNS]
        lines.append(f"| {result['variant']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder of the variants' run folders.")
    parser.add_argument("--variant", action="append", required=True,
                        help="'name' or 'name: section.field=value; ...' (repeatable).")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--steps", type=int, default=1000, help="GAN steps (%(default)s).")
    parser.add_argument("--style-steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0, help="data.seed and the metrics' seed.")
    parser.add_argument("--num-images", type=int, default=500,
                        help="test/train images the metrics sample (%(default)s).")
    args = parser.parse_args(argv)
    variants = [parse_variant(v) for v in args.variant]
    results = []
    for name, overrides in variants:
        print(f"{name}: {'; '.join(overrides) or 'preset as is'}", flush=True)
        results.append(ablate(args, name, overrides))
        print(table(results[-1:]).splitlines()[-1], flush=True)
    print(f"machine: {json.dumps(machine())}; date {datetime.date.today()}; preset {args.preset}, "
          f"{args.steps} GAN + {args.style_steps} style steps, seed {args.seed}")
    print(table(results))
    print(json.dumps(results))


if __name__ == "__main__":
    main()

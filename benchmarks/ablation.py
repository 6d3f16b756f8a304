"""Ablation of training options on the built-in dataset: same preset, budget and seed per variant.

    python benchmarks/ablation.py --out runs/ablation [--preset default] [--steps 1000]
        [--style-steps 300] [--seed 0 | --seeds 0,1,2,3,4] [--num-images 500]
        --variant baseline
        --variant "affine: model.generator_conditioning=affine"
        --variant "both: model.generator_conditioning=affine; train.gan_loss=hinge"

Each variant is `name` or `name: section.field=value; section.field=value` (the `--set`
overrides of `train.py`). For each, in order: `train.py` trains a run in OUT/name (metrics during
training off, so every variant pays the same), then `evaluate.py metrics` scores its test split
(unseen colour pairs) and its train split (seen classes) on the built-in dataset. A variant whose
OUT/name/ablation.json exists is not run again, so an interrupted ablation continues where it
stopped. The last lines are a Markdown table (docs/BENCHMARKS.md) and its JSON.

With `--seeds`, every variant trains once per seed (OUT/name/seed-N), and the table adds, per
variant, the mean (standard deviation) and the worst value of each column over its seeds: on
the built-in dataset one seed's seen colour pairs range from 0.13 to 0.74 for the same preset
(docs/BENCHMARKS.md, session 8), so a single seed decides nothing.

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
import statistics
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


def ablate(args, name: str, overrides: list[str], seed: int, run_dir: str) -> dict:
    """Trains variant `name` (its `overrides`) with `seed` in `run_dir` and scores it; a run
    folder that holds ablation.json is read, not trained again."""
    result_path = os.path.join(run_dir, "ablation.json")
    if os.path.exists(result_path):
        with open(result_path) as f:
            return json.load(f)
    os.makedirs(run_dir, exist_ok=True)
    sets = [f"train.steps={args.steps}", f"train.style_steps={args.style_steps}",
            "train.eval_every=0", f"data.seed={seed}", *overrides]
    train = [sys.executable, "train.py", "--preset", args.preset, "--out", run_dir]
    for override in sets:
        train += ["--set", override]
    seconds = run(train, os.path.join(run_dir, "ablation-train.log"))
    scores = {}
    for split in ("test", "train"):
        out = os.path.join(run_dir, f"metrics-{split}.json")
        run([sys.executable, "evaluate.py", "metrics", "--model", run_dir, "--format", "synthetic",
             "--split", split, "--metrics", METRICS, "--num-images", str(args.num_images),
             "--seed", str(seed), "--out", out],
            os.path.join(run_dir, f"ablation-metrics-{split}.log"))
        with open(out) as f:
            scores[split] = json.load(f)["metrics"]
    result = {"variant": name, "overrides": overrides, "preset": args.preset, "steps": args.steps,
              "style_steps": args.style_steps, "seed": seed, "run": run_dir,
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
    """Markdown: a row per result, named by its variant (and seed, when the seeds differ)."""
    several_seeds = len({result["seed"] for result in results}) > 1
    lines = ["| variant | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for result in results:
        name = result["variant"] + (f", seed {result['seed']}" if several_seeds else "")
        cells = [f"{result[c]:.1f}" if c == "minutes" else f"{result[c]:.3f}" for c in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def seed_summary(results: list[dict]) -> str:
    """Markdown rows per variant over its seeds: mean (sample standard deviation) and worst,
    the lowest value of each column but minutes, whose worst is the highest."""
    lines = ["| variant (seeds) | " + " | ".join(COLUMNS) + " |",
             "|---" * (len(COLUMNS) + 1) + "|"]
    for variant in dict.fromkeys(result["variant"] for result in results):
        rows = [result for result in results if result["variant"] == variant]
        seeds = ",".join(str(result["seed"]) for result in rows)
        means, worsts = [], []
        for column in COLUMNS:
            values = [row[column] for row in rows]
            mean = statistics.fmean(values)
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            worst = max(values) if column == "minutes" else min(values)
            digits = 1 if column == "minutes" else 3
            means.append(f"{mean:.{digits}f} ({spread:.{digits}f})")
            worsts.append(f"{worst:.{digits}f}")
        lines.append(f"| {variant} ({seeds}) mean (sd) | " + " | ".join(means) + " |")
        lines.append(f"| {variant} ({seeds}) worst | " + " | ".join(worsts) + " |")
    return "\n".join(lines)


def parse_seeds(text: str) -> list[int]:
    """"0,1,2" -> [0, 1, 2]."""
    try:
        seeds = [int(seed) for seed in text.split(",") if seed.strip()]
    except ValueError:
        seeds = []
    if not seeds or len(set(seeds)) != len(seeds):
        raise SystemExit(f"error: --seeds {text!r}: give distinct integers separated by commas, "
                         "e.g. --seeds 0,1,2,3,4.")
    return seeds


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder of the variants' run folders.")
    parser.add_argument("--variant", action="append", required=True,
                        help="'name' or 'name: section.field=value; ...' (repeatable).")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--steps", type=int, default=1000, help="GAN steps (%(default)s).")
    parser.add_argument("--style-steps", type=int, default=300)
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=0, help="data.seed and the metrics' seed.")
    seeds.add_argument("--seeds", help="several seeds, e.g. 0,1,2,3,4: each variant trains once "
                                       "per seed, and the table adds mean, sd and worst.")
    parser.add_argument("--num-images", type=int, default=500,
                        help="test/train images the metrics sample (%(default)s).")
    args = parser.parse_args(argv)
    variants = [parse_variant(v) for v in args.variant]
    seed_list = parse_seeds(args.seeds) if args.seeds else [args.seed]
    results = []
    for name, overrides in variants:
        for seed in seed_list:
            run_dir = os.path.join(args.out, name, f"seed-{seed}") if args.seeds else \
                os.path.join(args.out, name)
            print(f"{name}, seed {seed}: {'; '.join(overrides) or 'preset as is'}", flush=True)
            results.append(ablate(args, name, overrides, seed, run_dir))
            print(table(results[-1:]).splitlines()[-1], flush=True)
    print(f"machine: {json.dumps(machine())}; date {datetime.date.today()}; preset {args.preset}, "
          f"{args.steps} GAN + {args.style_steps} style steps, "
          f"seed{'s' if args.seeds else ''} {','.join(map(str, seed_list))}")
    print(table(results))
    if args.seeds:
        print(seed_summary(results))
    print(json.dumps(results))


if __name__ == "__main__":
    main()

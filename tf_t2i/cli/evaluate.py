"""`evaluate.py` / `tf-t2i-evaluate`: draw with a trained model, export it, measure it.

Subcommands (each takes `--model PATH`: a run folder written by train.py, whose latest checkpoint
is used, or an export folder written by `evaluate.py export`; see
tf_t2i/evaluation/model_source.py):

  samples         N images per caption of a file, a manifest.jsonl and a contact sheet
  interpolate     a grid moving between two captions (GAN-INT) or between two noise vectors
  style-transfer  Reed et al. figure 6: source images by rows, one column per caption
  edit            one image redrawn with another caption (its style, the caption's content)
  export          write a run's latest checkpoint as a SavedModel
  metrics         quality metrics on a dataset split, as JSON (tf_t2i/cli/quality.py)
  train-evaluator train the text/image judge that R-precision and domain FID use
  plot            a run's training curves and metrics against the step (a PNG)

Input is checked before TensorFlow starts wherever possible; bad input is one line
`error: ...` on stderr and exit code 2. Caption problems are warnings (`warning: ...` on stderr)
and the command goes on: an empty caption is drawn from the "no text" embedding, characters past
the model's caption length are dropped, characters outside its alphabet are encoded as unknown.
Image files of any mode are converted to RGB (tf_t2i/evaluation/inputs.py). `--image-size N`
makes any subcommand refuse a model that does not draw N x N images (a guard for scripts).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys

import numpy as np
from PIL import Image

from tf_t2i.cli import quality
from tf_t2i.cli.errors import run_cli
from tf_t2i.errors import UserInputError
from tf_t2i.evaluation import inputs, model_source
from tf_t2i.evaluation.figures import (NOISE_PATHS, default_scale, edit_image, figure,
                                       noise_interpolation, sample_images, style_transfer_grid,
                                       text_interpolation)

MANIFEST = "manifest.jsonl"
CONTACT_SHEET = "contact_sheet.png"
_SAMPLE_FILE = re.compile(r"^\d+_\d+\.png$")
_MAX_SEED = 2 ** 63 - 1

_SAMPLES_HELP = """\
Writes, in --out DIR:
  <i>_<j>.png         image j of caption i (i counts the file's non-blank lines from 0), S x S
  manifest.jsonl      one JSON object per image: file, caption, caption_index, index (= j), seed
  contact_sheet.png   rows = captions (labelled), columns = samples (labelled by seed)
Image j of every caption is drawn with seed S + j, alone: the manifest's `seed` redraws exactly
that image, e.g. with a file holding only its caption and `--num-per-caption 1 --seed <seed>`,
or in Python with generate(captions=[caption], seed=seed). The same caption, seed and model
give the same PNG bytes on the same machine (an export gives the run's images to within one
uint8 level; other hardware may differ by a level or so, noise vectors never do)."""

_INTERPOLATE_HELP = """\
--mode text (default): rows share a noise vector (row r: seed S + r); columns move from
phi(--text-a) to phi(--text-b) at t = 0 ... 1 (GAN-INT; column 0 equals `samples` of --text-a
with that seed).
--mode noise: the caption is fixed (--text, one or more; each gives --rows rows); row r moves
from the noise of seed S + 2r to the noise of seed S + 2r + 1 (--noise-path slerp, or linear).
The grid's rows and columns are labelled and a legend is written under it."""

_STYLE_HELP = """\
Grid layout (Reed et al. 2016, figure 6): one row per --images file (labelled with its name);
column 0 = the source image resized to the model's S x S (what the style encoder sees);
column k (1, 2, ...) = G(S(source), phi(caption k)): the source's style with caption k's content.
To see a reconstruction, pass the source's own caption as one of the captions. Captions are
numbered in order (files expand to their lines) and listed under the grid."""

_EDIT_HELP = """\
Text-driven editing: z = S(image) keeps the image's style (pose, background), G(z, phi(text))
draws it with the text's content, e.g. the same item in another colour. --out is the edited
S x S image; with --side-by-side it is [source resized to S x S | edited] (2S x S)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evaluate.py",
        description="Draw images with a trained GAN-INT-CLS model (a run folder or an export), "
                    "export runs as SavedModels, and measure and plot their quality.",
        epilog="Run `evaluate.py <command> --help` for a command's options and output layout.")
    commands = parser.add_subparsers(dest="command", metavar="command", required=True)

    model = argparse.ArgumentParser(add_help=False)
    model.add_argument("--model", required=True, metavar="PATH",
                       help="run folder (config.json + checkpoints/; its latest checkpoint) or "
                            "export folder (saved_model.pb + t2i_export.json).")
    model.add_argument("--image-size", type=int, metavar="N",
                       help="fail unless the model draws N x N images.")
    scale = argparse.ArgumentParser(add_help=False)
    scale.add_argument("--scale", type=int, metavar="K",
                       help="grid upscaling per image (default: ~128 px per image).")

    def add(name, help_text, epilog, parents):
        return commands.add_parser(name, help=help_text,
                                   description=help_text[0].upper() + help_text[1:] + ".",
                                   epilog=epilog, parents=parents,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)

    samples = add("samples", "draw N images per caption of a file", _SAMPLES_HELP,
                  [model, scale])
    samples.add_argument("--captions", required=True, metavar="FILE",
                         help="text file, one caption per line (blank lines skipped).")
    samples.add_argument("--num-per-caption", type=int, default=4, metavar="N",
                         help="images per caption (default: %(default)s).")
    samples.add_argument("--seed", type=int, default=0, metavar="S",
                         help="image j uses seed S + j (default: %(default)s).")
    samples.add_argument("--out", required=True, metavar="DIR", help="output folder.")
    samples.add_argument("--overwrite", action="store_true",
                         help="reuse a non-empty --out: replaces its manifest, contact sheet and "
                              "<i>_<j>.png files.")
    samples.set_defaults(run=_samples)

    interpolate = add("interpolate", "interpolate between two captions or two noise vectors",
                      _INTERPOLATE_HELP, [model, scale])
    interpolate.add_argument("--mode", choices=("text", "noise"), default="text",
                             help="what moves along the columns (default: %(default)s).")
    interpolate.add_argument("--text-a", metavar="TEXT", help="first caption (--mode text).")
    interpolate.add_argument("--text-b", metavar="TEXT", help="last caption (--mode text).")
    interpolate.add_argument("--text", nargs="+", metavar="TEXT",
                             help="fixed caption(s) (--mode noise).")
    interpolate.add_argument("--noise-path", choices=NOISE_PATHS, default="slerp",
                             help="noise interpolation (--mode noise; default: %(default)s).")
    interpolate.add_argument("--steps", type=int, default=8, metavar="K",
                             help="columns, >= 2 (default: %(default)s).")
    interpolate.add_argument("--rows", type=int, default=3, metavar="R",
                             help="rows (per caption in --mode noise; default: %(default)s).")
    interpolate.add_argument("--seed", type=int, default=0, metavar="S",
                             help="first seed (default: %(default)s).")
    interpolate.add_argument("--out", required=True, metavar="FILE", help="grid PNG to write.")
    interpolate.set_defaults(run=_interpolate)

    style = add("style-transfer", "draw source images' styles with other captions", _STYLE_HELP,
                [model, scale])
    style.add_argument("--images", nargs="+", required=True, metavar="IMG",
                       help="source image files (any size or colour mode).")
    style.add_argument("--captions", nargs="+", required=True, metavar="FILE_OR_TEXT",
                       help="captions: an existing file is read one caption per line, any other "
                            "argument is a caption itself.")
    style.add_argument("--out", required=True, metavar="FILE", help="grid PNG to write.")
    style.set_defaults(run=_style_transfer)

    edit = add("edit", "redraw an image with a caption (style from the image)", _EDIT_HELP,
               [model])
    edit.add_argument("--image", required=True, metavar="FILE", help="source image file.")
    edit.add_argument("--text", required=True, metavar="TEXT", help="caption of the result.")
    edit.add_argument("--out", required=True, metavar="FILE", help="PNG to write.")
    edit.add_argument("--side-by-side", action="store_true",
                      help="write [source | edited] instead of the edited image alone.")
    edit.set_defaults(run=_edit)

    export = add("export", "write a run's latest checkpoint as a SavedModel",
                 "The export serves generate (default), generate_from_noise, interpolate,\n"
                 "embed_text and style_transfer on raw strings (see tf_t2i/export.py), in any\n"
                 "TensorFlow process; evaluate.py accepts it as --model. Without --overwrite an\n"
                 "existing --out is refused; --overwrite replaces only an existing export.",
                 [model])
    export.add_argument("--out", required=True, metavar="DIR", help="export folder to write.")
    export.add_argument("--overwrite", action="store_true",
                        help="replace an existing export folder.")
    export.set_defaults(run=_export)
    quality.add_commands(add, model)
    return parser


# Checks of flag values (before TensorFlow starts).

def _at_least(flag: str, value: int, minimum: int) -> None:
    if value < minimum:
        raise UserInputError(f"{flag} {value} is too small: pass a whole number >= {minimum}.")


def _check_seed(seed: int, count: int) -> None:
    if seed < 0 or seed + count - 1 > _MAX_SEED:
        raise UserInputError(f"--seed {seed} is out of range: pass a whole number from 0 to "
                             f"{_MAX_SEED - count + 1}.")


def _check_scale(args) -> None:
    if args.scale is not None:
        _at_least("--scale", args.scale, 1)


def _open(args):
    """The --model, loaded (TensorFlow starts here); prints which model and checkpoint."""
    if args.image_size is not None:
        _at_least("--image-size", args.image_size, 1)
    model = model_source.open_model(args.model, image_size=args.image_size)
    print(f"model: {model.description}")
    return model


def _warn(messages) -> None:
    for message in messages:
        print(f"warning: {message}", file=sys.stderr)


def _scale(args, model) -> int:
    return args.scale or default_scale(model.image_size)


def _save_png(pixels, path: str) -> None:
    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
    try:
        image.save(path, format="PNG")
    except OSError as error:
        raise UserInputError(f"{path} cannot be written ({error.strerror or error}): choose "
                             "another path.") from None


# Subcommands.

def _samples(args) -> int:
    _at_least("--num-per-caption", args.num_per_caption, 1)
    _check_seed(args.seed, args.num_per_caption)
    _check_scale(args)
    captions = inputs.read_captions_file(args.captions)
    _check_sample_folder(args.out, args.overwrite)
    model = _open(args)
    _clear_sample_folder(args.out)
    _warn(model.caption_warnings(captions, [f"caption {i} of {args.captions}"
                                            for i in range(len(captions))]))

    images = sample_images(model, captions, args.num_per_caption, args.seed)
    lines = []
    for i, caption in enumerate(captions):
        for j in range(args.num_per_caption):
            name = f"{i}_{j}.png"
            _save_png(images[i, j], os.path.join(args.out, name))
            lines.append(json.dumps({"file": name, "caption": caption, "caption_index": i,
                                     "index": j, "seed": args.seed + j}, ensure_ascii=False))
    with open(os.path.join(args.out, MANIFEST), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    sheet = figure(images, row_labels=captions,
                   column_labels=[f"seed {args.seed + j}" for j in range(args.num_per_caption)],
                   scale=_scale(args, model))
    _save_png(sheet, os.path.join(args.out, CONTACT_SHEET))
    print(f"wrote {images.shape[0] * images.shape[1]} images of {len(captions)} captions, "
          f"{MANIFEST} and {CONTACT_SHEET} to {args.out}")
    return 0


def _check_sample_folder(out: str, overwrite: bool) -> None:
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserInputError(f"--out {out} is a file: pass a folder for the images.")
    if os.path.isdir(out) and os.listdir(out) and not overwrite:
        raise UserInputError(f"--out {out} already has files: choose a new folder, or pass "
                             f"--overwrite to replace its {MANIFEST}, {CONTACT_SHEET} and "
                             "<i>_<j>.png images.")


def _clear_sample_folder(out: str) -> None:
    """Creates --out, or removes what an earlier run wrote there (other files stay)."""
    if os.path.isdir(out):
        for name in os.listdir(out):
            if name in (MANIFEST, CONTACT_SHEET) or _SAMPLE_FILE.match(name):
                os.remove(os.path.join(out, name))
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as error:
        raise UserInputError(f"--out {out} cannot be created ({error.strerror or error}): "
                             "choose another folder.") from None


def _interpolate(args) -> int:
    _at_least("--steps", args.steps, 2)
    _at_least("--rows", args.rows, 1)
    _check_scale(args)
    if args.mode == "text":
        if args.text_a is None or args.text_b is None:
            raise UserInputError("--mode text needs --text-a and --text-b: pass the two captions "
                                 "to interpolate between.")
        if args.text is not None:
            raise UserInputError("--text is for --mode noise: use --text-a and --text-b, or add "
                                 "--mode noise.")
        _check_seed(args.seed, args.rows)
    else:
        if not args.text:
            raise UserInputError("--mode noise needs --text: pass the caption to keep fixed.")
        if args.text_a is not None or args.text_b is not None:
            raise UserInputError("--text-a and --text-b are for --mode text: use --text with "
                                 "--mode noise.")
        _check_seed(args.seed, 2 * args.rows)
    inputs.check_png_path(args.out)
    model = _open(args)

    if args.mode == "text":
        _warn(model.caption_warnings([args.text_a, args.text_b], ["--text-a", "--text-b"]))
        images, t = text_interpolation(model, args.text_a, args.text_b, args.steps, args.rows,
                                       args.seed)
        row_labels = [f"seed {args.seed + r}" for r in range(args.rows)]
        notes = [f"text interpolation (GAN-INT), one noise vector per row: t = 0 is "
                 f"A = {args.text_a!r}, t = 1 is B = {args.text_b!r}; columns are "
                 f"(1 - t) phi(A) + t phi(B)."]
    else:
        _warn(model.caption_warnings(args.text, [f"--text {k + 1}"
                                                 for k in range(len(args.text))]))
        images, t, layout = noise_interpolation(model, args.text, args.steps, args.rows,
                                                args.seed, args.noise_path)
        row_labels = [f"{text} (seed {a} -> {b})" for text, a, b in layout]
        notes = [f"noise interpolation ({args.noise_path}) with fixed text: row 'seed a -> b' "
                 f"moves from the noise of seed a (t = 0) to that of seed b (t = 1)."]
    sheet = figure(images, row_labels=row_labels,
                   column_labels=[f"t={value:.2f}" for value in t], scale=_scale(args, model),
                   notes=notes)
    _save_png(sheet, args.out)
    print(f"wrote a {images.shape[0]} x {images.shape[1]} {args.mode} interpolation grid to "
          f"{args.out}")
    return 0


def _style_transfer(args) -> int:
    _check_scale(args)
    captions = inputs.resolve_caption_args(args.captions)
    images = [inputs.read_rgb_image(path, "--images") for path in args.images]
    inputs.check_png_path(args.out)
    model = _open(args)
    _warn(model.caption_warnings(captions, [f"caption {k + 1}" for k in range(len(captions))]))

    grid = style_transfer_grid(model, images, captions)
    sheet = figure(grid, row_labels=[os.path.basename(path) for path in args.images],
                   column_labels=["source"] + [f"{k + 1}: {caption}"
                                               for k, caption in enumerate(captions)],
                   scale=_scale(args, model),
                   notes=["column 0: source image resized to the model's size; column k: "
                          "G(S(source), phi(caption k))."]
                   + [f"{k + 1}: {caption!r}" for k, caption in enumerate(captions)])
    _save_png(sheet, args.out)
    print(f"wrote a style transfer grid of {len(images)} images x {len(captions)} captions to "
          f"{args.out}")
    return 0


def _edit(args) -> int:
    image = inputs.read_rgb_image(args.image, "--image")
    inputs.check_png_path(args.out)
    model = _open(args)
    _warn(model.caption_warnings([args.text], ["--text"]))
    source, edited = edit_image(model, image, args.text)
    _save_png(np.concatenate([source, edited], axis=1) if args.side_by_side else edited, args.out)
    print(f"wrote the {'source | edited pair' if args.side_by_side else 'edited image'} to "
          f"{args.out}")
    return 0


def _export(args) -> int:
    if model_source.detect_model_kind(args.model) == model_source.EXPORT:
        raise UserInputError(f"--model {args.model} is already an export: pass the run folder "
                             "to export.")
    model_path, out_path = os.path.realpath(args.model), os.path.realpath(args.out)
    if model_path == out_path or model_path.startswith(out_path.rstrip(os.sep) + os.sep):
        raise UserInputError(f"--out {args.out} is or contains the run folder {args.model}: "
                             "choose a folder outside it (e.g. exports/<name>).")
    if os.path.exists(args.out) and (not os.path.isdir(args.out) or os.listdir(args.out)):
        if not args.overwrite:
            raise UserInputError(f"--out {args.out} already exists: choose a new export folder, "
                                 "or pass --overwrite to replace it.")
        if not os.path.isfile(os.path.join(args.out, model_source.EXPORT_FILES[0])):
            # --overwrite deletes the folder: never a run folder or any other data.
            raise UserInputError(f"--out {args.out} is not an export (no "
                                 f"{model_source.EXPORT_FILES[0]}): --overwrite only replaces "
                                 "exports; choose another folder.")
    model = _open(args)
    # The run's TextToImageExport: what export_from_run_dir writes, loaded with this tool's
    # checks (one error line for a corrupt checkpoint, --image-size).
    from tf_t2i.export import export_saved_model
    export_saved_model(model.functions, args.out, overwrite=args.overwrite)
    print(f"exported {model.description} to {args.out}")
    return 0


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


def main(argv: list[str] | None = None) -> None:
    sys.exit(run_cli(_main, argv))

"""Tests of `evaluate.py` (tf_t2i/cli/evaluate.py) on one tiny run folder and its export.

Every subcommand runs in this process through `main([...])` on the run folder; `samples` also on
the export (written by the `export` subcommand), whose images must match the run's. Outputs are
checked against the model's own functions: each PNG (and each tile of a grid, at the places
`image_grid` puts them) is the image the documented call draws. Bad input must give exit code 2
and one `error: ...` line naming the problem, never a traceback.

To stay fast, the module reads the session's tiny run (`cli_tiny_run`, never written to) and
exports it once, and `open_model` is memoised per (folder, --image-size) for the module: the
first command on each folder loads it for real, later commands reuse the loaded model (a CLI
process loads once anyway).
"""
import io
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.fixtures import run_evaluate as evaluate
from tf_t2i.config import get_preset
from tf_t2i.evaluation import model_source
from tf_t2i.evaluation.figures import fit_label, lerp, slerp
from tf_t2i.evaluation.inputs import read_captions_file, read_rgb_image, resolve_caption_args
from tf_t2i.export import METADATA_FILE, read_export_metadata

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 32  # the tiny preset's image size.
STEPS, STYLE_STEPS = get_preset("tiny").train.steps, get_preset("tiny").train.style_steps
LONG = "a large blue flower with round petals " * 3  # > 64 characters: truncated.
CAPTIONS_TEXT = (f"a small red bird with a short beak\n\n   \n  a yellow flower  \n{LONG}\n"
                 "ünïcödé bird\n")
CAPTIONS = ["a small red bird with a short beak", "a yellow flower", LONG.strip(),
            "ünïcödé bird"]
# image_grid's layout: 2 px padding, 260 px row-label column, 14 px column-label band.
PAD, LABELS, TOP = 2, 260, 14


def ok(*argv):
    code, out, err = evaluate(*argv)
    assert code == 0, err
    assert "Traceback" not in err and "error:" not in err
    return out, err


def warnings_of(err):
    return [line for line in err.splitlines() if line.startswith("warning: ")]


def load_png(path):
    with Image.open(path) as image:
        assert image.format == "PNG" and image.mode == "RGB"
        return np.asarray(image).copy()


def tile(sheet, row, column, scale, left=LABELS, top=TOP):
    """The image at (row, column) of an image_grid sheet, back at model size."""
    cell = SIZE * scale + PAD
    y, x = top + PAD + row * cell, left + PAD + column * cell
    return sheet[y:y + SIZE * scale:scale, x:x + SIZE * scale:scale]


def grid_width(columns, scale, left=LABELS):
    return left + columns * (SIZE * scale + PAD) + PAD


def max_diff(a, b):
    return int(np.abs(np.asarray(a, np.int32) - np.asarray(b, np.int32)).max())


@pytest.fixture(scope="module", autouse=True)
def loaded_models():
    real = model_source.open_model
    cache = {}

    def open_model(path, image_size=None, flag="--model"):
        key = (os.path.realpath(path), image_size)
        if key not in cache:
            cache[key] = real(path, image_size=image_size, flag=flag)
        return cache[key]

    patch = pytest.MonkeyPatch()
    patch.setattr(model_source, "open_model", open_model)
    yield open_model
    patch.undo()


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("evaluate")


@pytest.fixture(scope="module")
def run_dir(cli_tiny_run):
    return cli_tiny_run


@pytest.fixture(scope="module")
def model(run_dir, loaded_models):
    return loaded_models(run_dir)


@pytest.fixture(scope="module")
def export_dir(run_dir, work):
    path = str(work / "exports" / "tiny")
    out, _ = ok("export", "--model", run_dir, "--out", path)
    assert out.splitlines()[-1] == f"exported run folder {run_dir} (checkpoint at GAN step " \
                                   f"{STEPS}, style step {STYLE_STEPS}) to {path}"
    return path


@pytest.fixture(scope="module")
def captions_file(work):
    path = work / "captions.txt"
    path.write_text(CAPTIONS_TEXT, encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def samples_dir(run_dir, captions_file, work):
    out = str(work / "samples")
    _, err = ok("samples", "--model", run_dir, "--captions", captions_file, "--num-per-caption", 3,
                "--seed", 5, "--out", out)
    return out, err


@pytest.fixture(scope="module")
def image_files(work):
    """One source image per colour mode evaluate.py converts: name -> (path, expected RGB)."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, [40, 56, 3], dtype=np.uint8)
    folder = work / "images"
    folder.mkdir()
    files = {}

    def save(name, image, expected, **options):
        image.save(folder / name, **options)
        files[name] = (str(folder / name), expected)

    save("rgb.png", Image.fromarray(rgb), rgb)
    gray = Image.fromarray(rgb).convert("L")
    save("gray.png", gray, np.repeat(np.asarray(gray)[:, :, None], 3, axis=2))
    alpha = np.where(np.arange(56)[None, :] < 28, 0, 255).astype(np.uint8).repeat(40, axis=0)
    rgba = np.dstack([rgb, alpha])
    save("rgba.png", Image.fromarray(rgba, "RGBA"),
         np.where(alpha[:, :, None] == 0, 255, rgb).astype(np.uint8))
    palette = Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=16)
    save("palette.png", palette, np.asarray(palette.convert("RGB")))
    save("cmyk.jpg", Image.fromarray(rgb).convert("CMYK"), rgb, quality=100)  # compared loosely.
    sixteen = (np.arange(40 * 56).reshape(40, 56) * 29).astype(np.uint16)
    save("gray16.png", Image.fromarray(sixteen), np.repeat(
        np.round(sixteen / 257.0).astype(np.uint8)[:, :, None], 3, axis=2))
    return files


# samples


def test_samples_writes_images_manifest_and_contact_sheet(samples_dir, model, captions_file):
    out, err = samples_dir
    # Blank lines skipped; the long and the non-alphabet captions warned about, then drawn.
    assert warnings_of(err) == [
        f"warning: caption 2 of {captions_file} ({LONG[:37] + '...'!r}) has "
        f"{len(LONG.strip())} characters: only the first 64 are used.",
        f"warning: caption 3 of {captions_file} ('ünïcödé bird') has characters outside the "
        f"alphabet ('é' 'ï' 'ö' 'ü'): they are encoded as unknown."]
    names = {f"{i}_{j}.png" for i in range(4) for j in range(3)}
    assert set(os.listdir(out)) == names | {"manifest.jsonl", "contact_sheet.png"}

    with open(os.path.join(out, "manifest.jsonl"), encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    assert [r["file"] for r in records] == [f"{i}_{j}.png" for i in range(4) for j in range(3)]
    images = {}
    for record in records:
        i, j = record["caption_index"], record["index"]
        assert record == {"file": f"{i}_{j}.png", "caption": CAPTIONS[i], "caption_index": i,
                          "index": j, "seed": 5 + j}
        images[i, j] = load_png(os.path.join(out, record["file"]))
        assert images[i, j].shape == (SIZE, SIZE, 3)
        # The manifest's seed redraws the image alone, exactly.
        np.testing.assert_array_equal(images[i, j],
                                      model.generate([record["caption"]], record["seed"])[0][0])

    sheet = load_png(os.path.join(out, "contact_sheet.png"))
    scale = 4  # default: about 128 px per 32 px image.
    assert sheet.shape == (TOP + 4 * (SIZE * scale + PAD) + PAD, grid_width(3, scale), 3)
    for (i, j), image in images.items():
        np.testing.assert_array_equal(tile(sheet, i, j, scale), image)


def test_samples_are_deterministic_seeds_differ_and_overwrite_replaces(
        samples_dir, run_dir, captions_file, tmp_path):
    first, _ = samples_dir
    again = str(tmp_path / "again")
    ok("samples", "--model", run_dir, "--captions", captions_file, "--num-per-caption", 3,
       "--seed", 5, "--out", again)
    for name in os.listdir(first):
        with open(os.path.join(first, name), "rb") as a, open(os.path.join(again, name), "rb") as b:
            assert a.read() == b.read(), name

    # Another seed into the same folder: --overwrite replaces what samples wrote, nothing else.
    (tmp_path / "again" / "notes.txt").write_text("mine")
    code, _, err = evaluate("samples", "--model", run_dir, "--captions", captions_file,
                            "--seed", 6, "--out", again)
    assert code == 2 and "already has files" in err and "--overwrite" in err
    ok("samples", "--model", run_dir, "--captions", captions_file, "--num-per-caption", 2,
       "--seed", 105, "--out", again, "--overwrite", "--scale", 1)
    assert set(os.listdir(again)) == {f"{i}_{j}.png" for i in range(4) for j in range(2)} | {
        "manifest.jsonl", "contact_sheet.png", "notes.txt"}
    with open(os.path.join(again, "manifest.jsonl"), encoding="utf-8") as f:
        assert [json.loads(line)["seed"] for line in f] == [105, 106] * 4
    old = np.stack([load_png(os.path.join(first, f"{i}_{j}.png"))
                    for i in range(4) for j in range(2)])
    new = np.stack([load_png(os.path.join(again, f"{i}_{j}.png"))
                    for i in range(4) for j in range(2)])
    assert np.abs(old.astype(int) - new.astype(int)).mean() > 0
    assert load_png(os.path.join(again, "contact_sheet.png")).shape == (
        TOP + 4 * (SIZE + PAD) + PAD, grid_width(2, 1), 3)


def test_samples_from_the_export_match_the_run(samples_dir, export_dir, captions_file, tmp_path):
    from_run, _ = samples_dir
    out = str(tmp_path / "from_export")
    printed, err = ok("samples", "--model", export_dir, "--captions", captions_file,
                      "--num-per-caption", 3, "--seed", 5, "--out", out, "--image-size", 32)
    assert printed.startswith(f"model: export {export_dir} (checkpoint at GAN step {STEPS},")
    assert len(warnings_of(err)) == 2
    assert set(os.listdir(out)) == set(os.listdir(from_run))
    for name in ("manifest.jsonl",):
        with open(os.path.join(out, name)) as a, open(os.path.join(from_run, name)) as b:
            assert a.read() == b.read()
    for i in range(4):
        for j in range(3):
            assert max_diff(load_png(os.path.join(out, f"{i}_{j}.png")),
                            load_png(os.path.join(from_run, f"{i}_{j}.png"))) <= 1


def test_export_subcommand_writes_a_loadable_export(export_dir, run_dir, work, tmp_path):
    (tmp_path / "data.txt").write_text("not an export")
    metadata = read_export_metadata(export_dir)
    assert (metadata["image_size"], metadata["checkpoint"]["step"]) == (32, STEPS)
    assert os.path.isfile(os.path.join(export_dir, METADATA_FILE))
    assert model_source.detect_model_kind(export_dir) == model_source.EXPORT
    assert model_source.detect_model_kind(run_dir) == model_source.RUN
    assert model_source.EXPORT_FILES[1] == METADATA_FILE
    for argv, fragment in [
            ([run_dir, "--out", export_dir], f"--out {export_dir} already exists"),
            ([run_dir, "--out", str(tmp_path), "--overwrite"],
             f"--out {tmp_path} is not an export"),
            ([export_dir, "--out", str(work / "x")], f"--model {export_dir} is already an export"),
            ([run_dir, "--out", run_dir, "--overwrite"], "is or contains the run folder"),
            ([run_dir, "--out", os.path.dirname(run_dir), "--overwrite"],
             "is or contains the run folder")]:
        code, out, err = evaluate("export", "--model", *argv)
        assert (code, len(err.splitlines())) == (2, 1), err
        assert err.startswith("error: ") and fragment in err, err
    assert os.path.isfile(os.path.join(run_dir, "config.json"))
    assert os.listdir(tmp_path) == ["data.txt"]


# interpolate


def test_text_interpolation_grid(run_dir, model, tmp_path):
    out = str(tmp_path / "grids" / "text.png")
    printed, err = ok("interpolate", "--model", run_dir, "--text-a", "a red bird", "--text-b", "",
                      "--steps", 5, "--rows", 2, "--seed", 3, "--out", out, "--scale", 1)
    assert warnings_of(err) == ["warning: --text-b is empty: it is drawn from the text encoder's "
                                "'no text' embedding."]
    assert printed.splitlines()[-1] == f"wrote a 2 x 5 text interpolation grid to {out}"
    sheet = load_png(out)
    assert sheet.shape[1] == grid_width(5, 1)
    assert sheet.shape[0] > TOP + 2 * (SIZE + PAD) + PAD  # the legend is written below.
    for row in range(2):
        expected, t = model.interpolate("a red bird", "", 5, 3 + row)
        np.testing.assert_allclose(t, np.linspace(0, 1, 5), atol=1e-6)
        for column in range(5):
            np.testing.assert_array_equal(tile(sheet, row, column, 1), expected[column])
        # Column 0 is what `samples` draws for --text-a with the row's seed.
        assert max_diff(tile(sheet, row, 0, 1), model.generate(["a red bird"], 3 + row)[0][0]) <= 1


def test_noise_interpolation_grid(run_dir, model, tmp_path):
    out = str(tmp_path / "noise.png")
    texts = ["a red bird", "a blue flower"]
    ok("interpolate", "--model", run_dir, "--mode", "noise", "--text", *texts, "--steps", 4,
       "--rows", 2, "--seed", 10, "--out", out, "--scale", 2)
    sheet = load_png(out)
    assert sheet.shape[1] == grid_width(4, 2)
    t = np.linspace(0, 1, 4)
    for k, text in enumerate(texts):
        for r in range(2):
            row = k * 2 + r  # caption-major; row r of every caption: seed 10 + 2r -> 11 + 2r.
            a, b = model.noise(10 + 2 * r), model.noise(11 + 2 * r)
            expected = model.generate_from_noise([text] * 4, slerp(a, b, t))
            for column in range(4):
                np.testing.assert_array_equal(tile(sheet, row, column, 2), expected[column])
            # The end columns are the images of the two seeds' noises alone. (Not those of
            # `generate([text], seed)`: its noise is of (seed, text), `noise(seed)` of (seed, "").)
            for column, noise in ((0, a), (3, b)):
                alone = model.generate_from_noise([text], noise[None])[0]
                assert max_diff(tile(sheet, row, column, 2), alone) <= 1


def test_slerp_keeps_the_norm_and_ends_at_the_endpoints():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(64), rng.standard_normal(64)
    t = np.linspace(0, 1, 9)
    path = slerp(a, b, t)
    np.testing.assert_allclose(path[0], a, atol=1e-5)
    np.testing.assert_allclose(path[-1], b, atol=1e-5)
    norms = np.linalg.norm(path, axis=1)
    assert norms.min() > 0.9 * min(np.linalg.norm(a), np.linalg.norm(b))
    assert np.linalg.norm(lerp(a, b, t)[4]) < 0.8 * norms[4]  # why slerp is the default.
    np.testing.assert_allclose(slerp(a, 2 * a, t)[4], 1.5 * a, atol=1e-5)  # parallel: linear.


# style-transfer and edit


def test_read_rgb_image_converts_every_mode(image_files):
    for name, (path, expected) in image_files.items():
        pixels = read_rgb_image(path)
        assert pixels.dtype == np.uint8 and pixels.shape == (40, 56, 3), name
        if name == "cmyk.jpg":
            assert np.abs(pixels.astype(int) - expected).mean() < 2, name  # not inverted.
        else:
            np.testing.assert_array_equal(pixels, expected, err_msg=name)


def test_style_transfer_grid(run_dir, model, image_files, captions_file, tmp_path):
    names = ["rgb.png", "gray.png", "rgba.png", "palette.png", "cmyk.jpg"]
    out = str(tmp_path / "style.png")
    printed, err = ok("style-transfer", "--model", run_dir,
                      "--images", *[image_files[name][0] for name in names],
                      "--captions", captions_file, "a green bird", "", "--out", out,
                      "--scale", 1)
    captions = CAPTIONS + ["a green bird", ""]
    warned = warnings_of(err)
    assert [w.split(" (")[0].split(" is ")[0] for w in warned] == [
        "warning: caption 3", "warning: caption 4", "warning: caption 6"]
    assert "is empty" in warned[2]
    assert printed.splitlines()[-1] == \
        f"wrote a style transfer grid of 5 images x 6 captions to {out}"
    sheet = load_png(out)
    assert sheet.shape[1] == grid_width(1 + len(captions), 1)
    for row, name in enumerate(names):
        source = model.resize(read_rgb_image(image_files[name][0]))
        np.testing.assert_array_equal(tile(sheet, row, 0, 1), source)
        expected = model.style_transfer(np.repeat(source[None], len(captions), axis=0), captions)
        for k in range(len(captions)):
            assert max_diff(tile(sheet, row, k + 1, 1), expected[k]) <= 1, (name, k)


def test_edit_and_side_by_side(run_dir, model, image_files, tmp_path):
    path = image_files["rgba.png"][0]
    out, pair = str(tmp_path / "edited.png"), str(tmp_path / "pair.png")
    printed, err = ok("edit", "--model", run_dir, "--image", path, "--text", "a blue bird",
                      "--out", out)
    assert (printed.splitlines()[-1], err) == (f"wrote the edited image to {out}", "")
    edited = load_png(out)
    source = model.resize(read_rgb_image(path))
    assert edited.shape == (SIZE, SIZE, 3)
    np.testing.assert_array_equal(edited, model.style_transfer(source[None], ["a blue bird"])[0])

    ok("edit", "--model", run_dir, "--image", path, "--text", "a blue bird", "--out", pair,
       "--side-by-side")
    both = load_png(pair)
    assert both.shape == (SIZE, 2 * SIZE, 3)
    np.testing.assert_array_equal(both[:, :SIZE], source)
    np.testing.assert_array_equal(both[:, SIZE:], edited)


# input helpers


def test_caption_inputs(tmp_path, captions_file):
    assert read_captions_file(captions_file) == CAPTIONS
    bom = tmp_path / "bom.txt"
    bom.write_bytes("\ufeffa red bird\r\n\r\nA BLUE ONE\r\n".encode("utf-8"))
    assert resolve_caption_args([str(bom), "", "a cat", captions_file]) == [
        "a red bird", "A BLUE ONE", "", "a cat"] + CAPTIONS
    assert fit_label("short", 100) == "short"
    cut = fit_label("a caption far too long for a narrow column", 60)
    assert cut.endswith("..") and len(cut) < 20


# bad input


def _no_checkpoint(t, run_dir):
    os.makedirs(t / "early", exist_ok=True)
    shutil.copy(os.path.join(run_dir, "config.json"), t / "early" / "config.json")
    return t / "early"


def _corrupt_checkpoint(t, run_dir):
    folder = _no_checkpoint(t, run_dir)
    os.makedirs(folder / "checkpoints")
    (folder / "checkpoints" / "ckpt-00000002.weights.h5").write_bytes(b"garbage" * 10)
    (folder / "checkpoints" / "latest.json").write_text(
        json.dumps({"step": 2, "weights": "ckpt-00000002.weights.h5"}))
    return folder


def _file(t, name, content):
    path = t / name
    path.write_bytes(content)
    return path


def _truncated_png(t):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, [64, 64, 3], np.uint8)).save(
        buffer, "PNG")
    return _file(t, "truncated.png", buffer.getvalue()[:600])


def _samples(model, t, *extra):
    captions = _file(t, "caps.txt", b"a red bird\n")
    return ["samples", "--model", model, "--captions", captions, "--out", t / "out", *extra]


def _edit(model, t, image=None, *extra):
    image = image if image is not None else _file(t, "ok.png", _png_bytes())
    return ["edit", "--model", model, "--image", image, "--text", "a red bird", "--out",
            t / "edited.png", *extra]


def _png_bytes():
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buffer, "PNG")
    return buffer.getvalue()


# (case, argv builder (tmp_path, run_dir, export_dir), fragments of the one error line).
BAD_INPUT = [
    ("missing model folder", lambda t, r, e: _samples(t / "nope", t),
     ["--model {t}/nope does not exist", "pass a run folder written by train.py"]),
    ("model is a file", lambda t, r, e: _edit(_file(t, "model.h5", b"x"), t),
     ["--model {t}/model.h5 is a file, not a folder"]),
    ("neither run nor export", lambda t, r, e: _samples(_file(t, "x.txt", b"x").parent, t),
     ["--model {t} is neither a run folder nor an export", "saved_model.pb + t2i_export.json"]),
    ("folder of runs", lambda t, r, e: _samples(os.path.dirname(r), t),
     ["is neither a run folder nor an export, but holds model folders (", "run", "pass one"]),
    ("export of another image size", lambda t, r, e: _samples(e, t, "--image-size", 64),
     ["{e} was exported with image_size 32 but 64 is needed here"]),
    ("run of another image size", lambda t, r, e: _edit(r, t, None, "--image-size", 64),
     ["{r} was trained with image_size 32 but 64 is needed here"]),
    ("run without a checkpoint", lambda t, r, e: _samples(_no_checkpoint(t, r), t),
     ["{t}/early has no checkpoint yet"]),
    ("corrupt checkpoint", lambda t, r, e: _samples(_corrupt_checkpoint(t, r), t),
     ["the latest checkpoint of {t}/early cannot be loaded", "pass another run"]),
    ("missing captions file", lambda t, r, e: ["samples", "--model", r, "--captions",
                                               t / "none.txt", "--out", t / "o"],
     ["--captions {t}/none.txt does not exist", "one caption per line"]),
    ("blank captions file", lambda t, r, e: ["samples", "--model", r, "--captions",
                                             _file(t, "blank.txt", b"\n  \n\n"), "--out", t / "o"],
     ["--captions {t}/blank.txt has no captions"]),
    ("non-UTF-8 captions file", lambda t, r, e: ["samples", "--model", r, "--captions",
                                                 _file(t, "latin.txt", b"caf\xe9\n"), "--out", t],
     ["--captions {t}/latin.txt is not UTF-8 text"]),
    ("not an image", lambda t, r, e: _edit(r, t, _file(t, "fake.png", b"not an image")),
     ["--image {t}/fake.png cannot be read as an image", "pass a valid PNG or JPEG"]),
    ("truncated image", lambda t, r, e: _edit(r, t, _truncated_png(t)),
     ["--image {t}/truncated.png cannot be read as an image"]),
    ("missing image", lambda t, r, e: ["style-transfer", "--model", r, "--images",
                                       _file(t, "a.png", _png_bytes()), t / "b.png",
                                       "--captions", "a red bird", "--out", t / "g.png"],
     ["--images {t}/b.png does not exist"]),
    ("missing captions .txt", lambda t, r, e: ["style-transfer", "--model", r, "--images",
                                               _file(t, "a.png", _png_bytes()), "--captions",
                                               t / "typo.txt", "--out", t / "g.png"],
     ["--captions {t}/typo.txt looks like a captions file but does not exist"]),
    ("output not png", lambda t, r, e: ["interpolate", "--model", r, "--text-a", "a", "--text-b",
                                        "b", "--out", t / "grid.jpg"],
     ["--out {t}/grid.jpg", "ending in .png"]),
    ("one step", lambda t, r, e: ["interpolate", "--model", r, "--text-a", "a", "--text-b", "b",
                                  "--steps", 1, "--out", t / "g.png"],
     ["--steps 1 is too small", ">= 2"]),
    ("text mode without --text-b", lambda t, r, e: ["interpolate", "--model", r, "--text-a", "a",
                                                    "--out", t / "g.png"],
     ["--mode text needs --text-a and --text-b"]),
    ("noise mode without --text", lambda t, r, e: ["interpolate", "--model", r, "--mode", "noise",
                                                   "--out", t / "g.png"],
     ["--mode noise needs --text"]),
    ("negative seed", lambda t, r, e: _samples(r, t, "--seed", -1),
     ["--seed -1 is out of range"]),
    ("no samples", lambda t, r, e: _samples(r, t, "--num-per-caption", 0),
     ["--num-per-caption 0 is too small"]),
    ("samples --out is a file", lambda t, r, e: ["samples", "--model", r, "--captions",
                                                 _file(t, "c.txt", b"a\n"), "--out",
                                                 _file(t, "o.png", b"")],
     ["--out {t}/o.png is a file"]),
]


@pytest.mark.parametrize("case, argv, fragments", BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_is_one_error_line_and_exit_code_2(tmp_path, run_dir, export_dir, case, argv,
                                                     fragments):
    code, out, err = evaluate(*argv(tmp_path, run_dir, export_dir))
    assert (code, out) == (2, ""), err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and lines[0].endswith("."), lines[0]
    for fragment in fragments:
        assert fragment.format(t=tmp_path, r=run_dir, e=export_dir) in lines[0]


def test_the_script_in_a_subprocess(tmp_path):
    """`python evaluate.py` as a user runs it: help, and a bad --model found before TensorFlow
    starts (so the error is the only line: no TensorFlow start-up notice, no traceback)."""
    result = subprocess.run([sys.executable, "evaluate.py", "--help"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stderr == ""
    for command in ("samples", "interpolate", "style-transfer", "edit", "export"):
        assert command in result.stdout
    (tmp_path / "caps.txt").write_text("a red bird\n")
    result = subprocess.run(
        [sys.executable, "evaluate.py", "samples", "--model", str(tmp_path / "missing"),
         "--captions", str(tmp_path / "caps.txt"), "--out", str(tmp_path / "out")],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        f"error: --model {tmp_path / 'missing'} does not exist: pass a run folder written by "
        f"train.py (config.json + checkpoints/) or an export folder (saved_model.pb + "
        f"t2i_export.json)."]

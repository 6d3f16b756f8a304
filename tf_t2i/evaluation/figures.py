"""The images evaluate.py draws, computed with a `ModelSource`, and their labelled layout.

Seeds (all Philox, stateless; see `tf_t2i.export`): "the noise of seed s" is the noise vector
`generate([caption], s)` draws for a single caption, so any image below can be redrawn alone:

  samples              image j of caption i = generate([caption i], seed + j)
  text interpolation   row r: interpolate(text_a, text_b, steps, seed + r) (one noise per row,
                       columns move from phi(text_a) to phi(text_b))
  noise interpolation  row r of each caption: noise of seed + 2r to noise of seed + 2r + 1
                       (slerp by default), the caption fixed; generate_from_noise
  style transfer       row n, column 0: source image n resized to S x S; column k >= 1:
                       G(S(source n), phi(caption k)), Reed et al. 2016 section 4.4 / figure 6
  edit                 G(S(image), phi(text)): the image's style (pose, background) with the
                       text's content (e.g. another colour)
"""
from __future__ import annotations

import textwrap

import numpy as np
from PIL import Image, ImageDraw

from tf_t2i.image_grid import image_grid

NOISE_PATHS = ("slerp", "linear")
_NOTE_SPACING = 2
_CHAR_WIDTH = 6  # about what PIL's default font needs per character.


def default_scale(image_size: int) -> int:
    """Grid upscaling that shows each image at about 128 pixels (4 for 32, 2 for 64, 1 for 128)."""
    return max(1, 128 // int(image_size))


def sample_images(model, captions: list[str], num_per_caption: int, seed: int) -> np.ndarray:
    """uint8 [captions, num_per_caption, S, S, 3]: image j of caption i = generate([c_i], seed + j).

    One call per image, with one caption, so each image is exactly what that call returns: a
    user can redraw any single image from its caption and seed.
    """
    size = model.image_size
    images = np.zeros([len(captions), num_per_caption, size, size, 3], np.uint8)
    for i, caption in enumerate(captions):
        for j in range(num_per_caption):
            images[i, j] = model.generate([caption], seed + j)[0][0]
    return images


def text_interpolation(model, text_a: str, text_b: str, steps: int, rows: int,
                       seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 [rows, steps, S, S, 3], t [steps]): row r uses the noise of seed + r throughout."""
    drawn = [model.interpolate(text_a, text_b, steps, seed + r) for r in range(rows)]
    return np.stack([images for images, _ in drawn]), drawn[0][1]


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation [len(t), Z] from a to b (linear when they are nearly parallel).

    Gaussian noise lives near a sphere of radius sqrt(Z); the straight line between two samples
    passes well inside it (the midpoint's norm is about 0.71 of theirs), where the generator saw
    no training noise. slerp keeps the path at the endpoints' norms.
    """
    a, b, t = np.asarray(a, np.float64), np.asarray(b, np.float64), np.asarray(t, np.float64)
    cos = np.dot(a, b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12)
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if np.sin(omega) < 1e-6:
        return lerp(a, b, t)
    path = (np.sin((1.0 - t) * omega)[:, None] * a + np.sin(t * omega)[:, None] * b) / np.sin(omega)
    return path.astype(np.float32)


def lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Linear interpolation [len(t), Z] from a to b."""
    t = np.asarray(t, np.float64)[:, None]
    return ((1.0 - t) * np.asarray(a, np.float64) + t * np.asarray(b, np.float64)).astype(
        np.float32)


def noise_interpolation(model, texts: list[str], steps: int, rows: int, seed: int,
                        path: str = "slerp") -> tuple[np.ndarray, np.ndarray, list[tuple]]:
    """Noise interpolation with fixed text (Reed et al. figure 8, right).

    Returns:
        uint8 [len(texts) * rows, steps, S, S, 3] (caption-major: the rows of texts[0] first),
        t [steps], and per row (text, seed_a, seed_b). Row r of every text moves from the noise
        of seed + 2r to the noise of seed + 2r + 1, so rows of different texts share noise.
    """
    between = {"slerp": slerp, "linear": lerp}[path]
    t = np.linspace(0.0, 1.0, steps).astype(np.float32)
    paths = [between(model.noise(seed + 2 * r), model.noise(seed + 2 * r + 1), t)
             for r in range(rows)]
    images, layout = [], []
    for text in texts:
        for r, noise in enumerate(paths):
            images.append(model.generate_from_noise([text] * steps, noise))
            layout.append((text, seed + 2 * r, seed + 2 * r + 1))
    return np.stack(images), t, layout


def style_transfer_grid(model, images: list[np.ndarray], captions: list[str]) -> np.ndarray:
    """uint8 [len(images), 1 + len(captions), S, S, 3]: column 0 the source resized to S x S
    (exactly what the style encoder sees), column k + 1 = G(S(source), phi(captions[k]))."""
    sources = np.stack([model.resize(image) for image in images])
    count, columns = len(sources), len(captions)
    drawn = model.style_transfer(np.repeat(sources, columns, axis=0), list(captions) * count)
    drawn = drawn.reshape([count, columns] + list(sources.shape[1:]))
    return np.concatenate([sources[:, None], drawn], axis=1)


def edit_image(model, image: np.ndarray, text: str) -> tuple[np.ndarray, np.ndarray]:
    """(source resized to S x S, edited image G(S(source), phi(text))), both uint8 [S, S, 3]."""
    source = model.resize(image)
    return source, model.style_transfer(source[None], [text])[0]


def figure(images: np.ndarray, row_labels: list[str] | None = None,
           column_labels: list[str] | None = None, scale: int = 1,
           notes: list[str] | None = None) -> Image.Image:
    """`image_grid` (tiles at its usual places) with `notes` (a legend) written below it.

    Column labels are shortened to fit their column.
    """
    height, width = images.shape[2:4]
    if column_labels:
        column_labels = [fit_label(label, width * scale) for label in column_labels]
    sheet = image_grid(images, row_labels=row_labels, scale=scale, column_labels=column_labels)
    if not notes:
        return sheet
    chars = max(20, (sheet.width - 8) // _CHAR_WIDTH)
    text = "\n".join(line for note in notes for line in (textwrap.wrap(note, chars) or [""]))
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_height = measure.multiline_textbbox((0, 0), text, spacing=_NOTE_SPACING)[3]
    out = Image.new("RGB", (sheet.width, sheet.height + text_height + 6), (255, 255, 255))
    out.paste(sheet, (0, 0))
    ImageDraw.Draw(out).multiline_text((4, sheet.height + 2), text, fill=(0, 0, 0),
                                       spacing=_NOTE_SPACING)
    return out


def fit_label(text: str, width: int) -> str:
    """`text`, cut and ended with ".." if PIL's default font needs more than `width` pixels."""
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    if draw.textlength(text) <= width:
        return text
    while text and draw.textlength(text + "..") > width:
        text = text[:-1]
    return text.rstrip() + ".."

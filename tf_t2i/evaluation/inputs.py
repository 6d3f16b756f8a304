"""What evaluate.py reads from the user: caption files, caption arguments, image files, out paths.

Nothing here imports TensorFlow, so bad input is reported in a second, before the model loads.
Every problem raises `UserInputError` with one sentence naming the file or flag and the fix.

Images (`read_rgb_image`) are decoded with PIL and converted to 8-bit RGB, whatever the file holds:
  * grayscale (L, 1, I;16 ...): copied to the three channels; 16-bit values are scaled to 8 bits;
  * transparency (RGBA, LA, palette or grayscale with a transparent colour): composited onto
    white, so transparent areas become white (as on most product photos) instead of whatever
    colour the hidden pixels hold;
  * palette (P), CMYK, YCbCr and other modes: PIL's conversion to RGB;
  * EXIF orientation is applied (photos come out upright); of an animated file, the first frame.
A file PIL cannot open or fully decode (not an image, truncated, corrupt) is an error naming it.
"""
from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageOps

from tf_t2i.errors import UserInputError

_ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def read_captions_file(path: str, flag: str = "--captions") -> list[str]:
    """The captions of a text file: one per line, surrounding whitespace stripped, blank lines
    skipped (UTF-8, a byte-order mark is ignored). A missing, unreadable or empty file is an error.
    """
    if not os.path.exists(path):
        raise UserInputError(f"{flag} {path} does not exist: pass a text file with one caption "
                             "per line.")
    if not os.path.isfile(path):
        raise UserInputError(f"{flag} {path} is not a file: pass a text file with one caption "
                             "per line.")
    try:
        with open(path, encoding="utf-8-sig") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError as error:
        raise UserInputError(f"{flag} {path} is not UTF-8 text (byte {error.start}): save it as "
                             "UTF-8 with one caption per line.") from None
    except OSError as error:
        raise UserInputError(f"{flag} {path} cannot be read ({error.strerror or error}): check "
                             "its permissions.") from None
    captions = [line.strip() for line in lines if line.strip()]
    if not captions:
        raise UserInputError(f"{flag} {path} has no captions (it is empty or blank): write one "
                             "caption per line.")
    return captions


def resolve_caption_args(values: list[str], flag: str = "--captions") -> list[str]:
    """Captions from FILE_OR_TEXT arguments, in order.

    An argument naming an existing file is read with `read_captions_file` (its captions take its
    place); an argument ending in ".txt" that names no file is an error (a mistyped file name
    would otherwise be drawn as a caption); anything else, the empty string included, is itself
    a caption.
    """
    captions = []
    for value in values:
        if value and os.path.exists(value):
            captions.extend(read_captions_file(value, flag))
        elif value.lower().endswith(".txt"):
            raise UserInputError(f"{flag} {value} looks like a captions file but does not exist: "
                                 "fix the path, or pass the caption text itself.")
        else:
            captions.append(value)
    return captions


def read_rgb_image(path: str, flag: str = "--image") -> np.ndarray:
    """uint8 [H, W, 3] RGB pixels of an image file (see the module docstring for conversions)."""
    if not os.path.exists(path):
        raise UserInputError(f"{flag} {path} does not exist: pass an image file (PNG, JPEG, ...).")
    if not os.path.isfile(path):
        raise UserInputError(f"{flag} {path} is not a file: pass an image file (PNG, JPEG, ...).")
    try:
        with Image.open(path) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
            return _to_rgb(image, path, flag)
    except UserInputError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        # PIL raises UnidentifiedImageError (an OSError) for non-images, OSError for truncated
        # files, SyntaxError/ValueError for some corrupt headers.
        reason = str(error).split("\n")[0] or type(error).__name__
        raise UserInputError(f"{flag} {path} cannot be read as an image ({reason}): pass a valid "
                             "PNG or JPEG file.") from None


def _to_rgb(image: Image.Image, path: str, flag: str) -> np.ndarray:
    if image.mode in _SIXTEEN_BIT:
        values = np.asarray(image, dtype=np.float64)
        # 16-bit grayscale (what PIL gives for 16-bit PNGs): 65535 -> 255.
        gray = np.clip(np.round(values / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    try:
        rgb = image.convert("RGB")
    except ValueError as error:
        raise UserInputError(f"{flag} {path} has image mode {image.mode}, which cannot be "
                             f"converted to RGB ({error}): save it as an RGB PNG or "
                             "JPEG.") from None
    return np.asarray(rgb, dtype=np.uint8).copy()


def check_png_path(path: str, flag: str = "--out") -> str:
    """An output PNG path: must end in .png and not be a folder; its folder is created."""
    if not path.lower().endswith(".png"):
        raise UserInputError(f"{flag} {path}: evaluate.py writes PNG images; give a file name "
                             "ending in .png.")
    if os.path.isdir(path):
        raise UserInputError(f"{flag} {path} is a folder: give a file name ending in .png.")
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise UserInputError(f"{flag} {path}: its folder cannot be created "
                             f"({error.strerror or error}): choose another path.") from None
    return path

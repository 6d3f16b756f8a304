"""Contact sheets: a grid of images with an optional label per row."""
from __future__ import annotations

import textwrap

import numpy as np
from PIL import Image, ImageDraw

_PAD = 2
_LABEL_WIDTH = 260
_BACKGROUND = (255, 255, 255)


def to_uint8(images) -> np.ndarray:
    """float images in [-1, 1] -> uint8 in [0, 255], same shape."""
    images = (np.asarray(images, dtype=np.float32) + 1.0) * 127.5
    return np.clip(np.round(images), 0, 255).astype(np.uint8)


def image_grid(images: np.ndarray, row_labels: list[str] | None = None, scale: int = 1,
               column_labels: list[str] | None = None) -> Image.Image:
    """Lays out uint8 images [rows, columns, H, W, 3] as one picture.

    Args:
        images: uint8 [rows, columns, H, W, 3].
        row_labels: text drawn left of each row (wrapped), e.g. the row's caption.
        scale: integer upscaling of each image (nearest neighbour, so pixels stay honest).
        column_labels: text drawn above each column.
    """
    rows, columns, height, width, _ = images.shape
    cell_h, cell_w = height * scale + _PAD, width * scale + _PAD
    left = _LABEL_WIDTH if row_labels else 0
    top = 14 if column_labels else 0
    sheet = Image.new("RGB", (left + columns * cell_w + _PAD, top + rows * cell_h + _PAD),
                      _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for r in range(rows):
        for c in range(columns):
            tile = Image.fromarray(images[r, c]).resize((width * scale, height * scale),
                                                        Image.NEAREST)
            sheet.paste(tile, (left + _PAD + c * cell_w, top + _PAD + r * cell_h))
        if row_labels:
            lines = textwrap.wrap(row_labels[r], width=42)[: max(1, cell_h // 12)]
            draw.multiline_text((4, top + _PAD + r * cell_h), "\n".join(lines), fill=(0, 0, 0),
                                spacing=1)
    for c, label in enumerate(column_labels or []):
        draw.text((left + _PAD + c * cell_w, 1), label, fill=(0, 0, 0))
    return sheet

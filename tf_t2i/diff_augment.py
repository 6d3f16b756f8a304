"""Differentiable augmentation of what D sees (DiffAugment), as pure functions of keras.ops.

D sees real and fake images through the same random transformation, so it cannot tell them apart
by it, and G's gradient flows back through the transformation to G. Only translation is offered:
DiffAugment's `color` and `cutout` policies change colours and hide parts of the image, the very
evidence a caption speaks of.

Reference: Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training",
section 3 and `DiffAugment_tf.py` (`rand_translation`, ratio 1/8) of
mit-han-lab/data-efficient-gans.
"""
from keras import ops

TRANSLATION_RATIO = 1.0 / 8.0


def max_translation(image_size):
    """The largest shift in pixels, +-1/8 of the side, rounded as DiffAugment does (32 -> 4)."""
    return int(image_size * TRANSLATION_RATIO + 0.5)


def translate(images, shifts):
    """Moves each image by its own whole-pixel shift; pixels moved in from outside are zero.

    out[n, i, j] = images[n, i + shifts[n, 0], j + shifts[n, 1]] where that is inside the image,
    else 0 (DiffAugment's zero padding). Computed as two products with one-hot shift matrices:
    static shapes, and differentiable with respect to the images.

    Args:
        images: [batch, H, W, C].
        shifts: int [batch, 2] (rows, columns); zero shifts return the images unchanged.

    Returns:
        [batch, H, W, C] in the images' dtype.
    """
    height, width = images.shape[1], images.shape[2]
    shifts = ops.cast(shifts, "int32")
    rows = ops.one_hot(ops.arange(height)[None, :] + shifts[:, 0:1], height, dtype=images.dtype)
    columns = ops.one_hot(ops.arange(width)[None, :] + shifts[:, 1:2], width, dtype=images.dtype)
    moved_rows = ops.einsum("nia,najc->nijc", rows, images)
    return ops.einsum("njb,nibc->nijc", columns, moved_rows)

"""Layer factories of the PyTorch reference: DCGAN initialisation, as `tf_t2i.models.blocks`.

Torch's BatchNorm defaults (momentum 0.1, eps 1e-5) are the ones `tf_t2i.models.blocks` copies.

Reference: Reed et al. 2016, section 4.1 (DCGAN-style networks, weights N(0, 0.02)).
"""
from torch import nn


def conv(in_channels, out_channels, kernel_size, stride=1, bias=False, padding="same"):
    """Conv2d with N(0, 0.02) weights; no bias by default because a BatchNorm follows.

    padding: "same" (Keras' padding for this project's 1x1, 3x3 and 4x4 stride-2 kernels on even
        sides) or "valid".
    """
    pixels = (kernel_size - stride + 1) // 2 if padding == "same" else 0
    return _initialised(nn.Conv2d(in_channels, out_channels, kernel_size, stride, pixels,
                                  bias=bias))


def up_conv(in_channels, out_channels, bias=False):
    """4x4 stride-2 ConvTranspose2d that doubles the side (Reed's SpatialFullConvolution)."""
    return _initialised(nn.ConvTranspose2d(in_channels, out_channels, 4, 2, padding=1, bias=bias))


def linear(in_features, out_features, bias=True):
    return _initialised(nn.Linear(in_features, out_features, bias=bias))


def batch_norm(channels, dims=2):
    """BatchNorm2d (or 1d for dims=1) with gamma ~ N(1, 0.02), beta 0."""
    layer = nn.BatchNorm2d(channels) if dims == 2 else nn.BatchNorm1d(channels)
    nn.init.normal_(layer.weight, 1.0, 0.02)
    nn.init.zeros_(layer.bias)
    return layer


def leaky_relu():
    return nn.LeakyReLU(0.2)


def _initialised(layer):
    nn.init.normal_(layer.weight, 0.0, 0.02)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer

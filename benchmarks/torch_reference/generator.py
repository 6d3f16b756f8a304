"""Reed's 64x64 GAN-INT-CLS generator in PyTorch, as `tf_t2i.models.Generator` (transpose)."""
import torch
from torch import nn

from benchmarks.torch_reference import layers
from benchmarks.torch_reference.residual_block import ResidualBlock


class Generator(nn.Module):
    """G(z, phi(t)): noise and a text embedding to a 64x64 image in [-1, 1].

    [z, LeakyReLU(Linear(t))] -> Linear to 4x4x(ngf*8) + BN -> residual block -> up 8x8x(ngf*4)
    + BN -> residual block -> up 16x16x(ngf*2), 32x32xngf (BN, ReLU) -> up to 64x64x3, tanh.
    The first Linear equals Reed's 4x4 transposed convolution of a 1x1 input.

    Args:
        z_dim: noise size (Reed: 100).
        embedding_dim: text embedding size (Reed: 1024).
        text_projection_dim: the embedding is projected to this size (Reed: 128).
        ngf: width multiplier (Reed: 128).

    Call args: z [batch, z_dim], text_embedding [batch, embedding_dim].

    Returns: [batch, 3, 64, 64] in [-1, 1].

    Reference: Reed et al. 2016, section 4.1; reedscot/icml2016 `main_cls_int.lua`.
    """

    def __init__(self, z_dim=100, embedding_dim=1024, text_projection_dim=128, ngf=128):
        super().__init__()
        self.width = ngf * 8
        self.text_projection = nn.Sequential(
            layers.linear(embedding_dim, text_projection_dim), layers.leaky_relu())
        self.project = layers.linear(z_dim + text_projection_dim, 4 * 4 * self.width, bias=False)
        self.decoder = nn.Sequential(
            layers.batch_norm(ngf * 8), ResidualBlock(ngf * 8, ngf * 2, nn.ReLU()),
            layers.up_conv(ngf * 8, ngf * 4), layers.batch_norm(ngf * 4),
            ResidualBlock(ngf * 4, ngf, nn.ReLU()),
            layers.up_conv(ngf * 4, ngf * 2), layers.batch_norm(ngf * 2), nn.ReLU(),
            layers.up_conv(ngf * 2, ngf), layers.batch_norm(ngf), nn.ReLU(),
            layers.up_conv(ngf, 3, bias=True), nn.Tanh())

    def forward(self, z, text_embedding):
        joint = torch.cat([z, self.text_projection(text_embedding)], dim=1)
        return self.decoder(self.project(joint).view(-1, self.width, 4, 4))

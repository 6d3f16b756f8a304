"""Reed's 64x64 GAN-INT-CLS discriminator in PyTorch, as `tf_t2i.models.Discriminator`."""
import torch
from torch import nn

from benchmarks.torch_reference import layers
from benchmarks.torch_reference.residual_block import ResidualBlock


class Discriminator(nn.Module):
    """D(x, phi(t)): the logit that image x is real and matches the text embedding.

    4x4 stride-2 convs 64 -> 4 px (ndf, ndf*2, ndf*4, ndf*8; BN from the second) -> residual block
    -> concatenate the projected text (Linear, BN, LeakyReLU) replicated to 4x4 -> 1x1 conv
    (ndf*8) + BN + LeakyReLU -> 4x4 valid conv -> one logit.

    Args:
        embedding_dim: text embedding size (Reed: 1024).
        text_projection_dim: the embedding is projected to this size (Reed: 128).
        ndf: width multiplier (Reed: 64).

    Call args: images [batch, 3, 64, 64] in [-1, 1], text_embedding [batch, embedding_dim].

    Returns: [batch] unactivated logits.

    Reference: Reed et al. 2016, section 4.1; reedscot/icml2016 `main_cls_int.lua`.
    """

    def __init__(self, embedding_dim=1024, text_projection_dim=128, ndf=64):
        super().__init__()
        self.image_features = nn.Sequential(
            layers.conv(3, ndf, 4, 2, bias=True), layers.leaky_relu(),
            layers.conv(ndf, ndf * 2, 4, 2), layers.batch_norm(ndf * 2), layers.leaky_relu(),
            layers.conv(ndf * 2, ndf * 4, 4, 2), layers.batch_norm(ndf * 4), layers.leaky_relu(),
            # Stops at BatchNorm: the block's LeakyReLU follows its addition.
            layers.conv(ndf * 4, ndf * 8, 4, 2), layers.batch_norm(ndf * 8),
            ResidualBlock(ndf * 8, ndf * 2, layers.leaky_relu()))
        self.text_projection = nn.Sequential(
            layers.linear(embedding_dim, text_projection_dim, bias=False),
            layers.batch_norm(text_projection_dim, dims=1), layers.leaky_relu())
        self.joint_classifier = nn.Sequential(
            layers.conv(ndf * 8 + text_projection_dim, ndf * 8, 1), layers.batch_norm(ndf * 8),
            layers.leaky_relu(), layers.conv(ndf * 8, 1, 4, bias=True, padding="valid"))

    def forward(self, images, text_embedding):
        return self.score(self.features(images), text_embedding)

    def features(self, images):
        """[batch, ndf*8, 4, 4] image features, before the text joins (GAN-CLS scores the real
        images' features with the right and the wrong text)."""
        return self.image_features(images)

    def score(self, features, text_embedding):
        """[batch] logits of `features(images)` paired with `text_embedding`."""
        text = self.text_projection(text_embedding)[:, :, None, None].expand(-1, -1, 4, 4)
        return self.joint_classifier(torch.cat([features, text], dim=1)).flatten()

"""The bottleneck residual block of Reed's 64x64 G and D, as `tf_t2i.models.ResidualBlock`."""
from torch import nn

from benchmarks.torch_reference import layers


class ResidualBlock(nn.Module):
    """1x1 -> 3x3 -> 3x3 bottleneck (BatchNorm after each) added to its input, then activated.

    Args:
        channels: channels of the input and the output.
        bottleneck_channels: channels of the two inner convolutions (Reed: channels // 4).
        activation: an activation module: ReLU (G) or LeakyReLU(0.2) (D).

    Shapes: [batch, channels, height, width] -> the same.

    Reference: Reed et al. 2016, section 4.1; reedscot/icml2016 `main_cls_int.lua`.
    """

    def __init__(self, channels, bottleneck_channels, activation):
        super().__init__()
        self.branch = nn.Sequential(
            layers.conv(channels, bottleneck_channels, 1),
            layers.batch_norm(bottleneck_channels), activation,
            layers.conv(bottleneck_channels, bottleneck_channels, 3),
            layers.batch_norm(bottleneck_channels), activation,
            layers.conv(bottleneck_channels, channels, 3), layers.batch_norm(channels))
        self.activation = activation

    def forward(self, inputs):
        return self.activation(inputs + self.branch(inputs))

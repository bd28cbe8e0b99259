"""DCGAN networks (Radford et al., 2015) sized for small images such as MNIST's 28x28.

The generator grows a 4x smaller map twice with stride-2 transposed convolutions; the discriminator
mirrors it with stride-2 convolutions. Conditional versions (num_classes > 0) follow the classic cGAN
recipe: the one-hot label (B, K, 1, 1) is concatenated to the noise, and one-hot label maps (B, K, H, W)
to the discriminator's input image.
"""

from collections.abc import Sequence

import torch
from torch import nn

from gan_lightning.networks.common import check_dims, dcgan_init, one_hot


def _check_image_shape(image_shape: Sequence[int]) -> tuple[int, int, int]:
    channels, height, width = image_shape
    if height != width or height % 4:
        raise ValueError(f"DCGAN networks need square images with a side divisible by 4, got {height}x{width}")
    return channels, height, width


class DCGANGenerator(nn.Module):
    def __init__(self, noise_dim: int, image_shape: Sequence[int], num_classes: int = 0, ngf: int = 64):
        super().__init__()
        check_dims(noise_dim, num_classes)
        channels, side, _ = _check_image_shape(image_shape)
        self.noise_dim, self.num_classes, self.image_shape = noise_dim, num_classes, tuple(image_shape)
        self.net = nn.Sequential(
            # (B, noise_dim + K, 1, 1) -> (B, 4ngf, side/4, side/4)
            nn.ConvTranspose2d(noise_dim + num_classes, ngf * 4, side // 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(inplace=True),
            # -> (B, 2ngf, side/2, side/2)
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(inplace=True),
            # -> (B, C, side, side)
            nn.ConvTranspose2d(ngf * 2, channels, 4, 2, 1),
            nn.Tanh(),
        )
        self.apply(dcgan_init)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes:
            z = torch.cat([z, one_hot(labels, self.num_classes, z)], dim=1)  # (B, noise_dim + K)
        return self.net(z[:, :, None, None])  # (B, C, H, W) in [-1, 1]


class DCGANDiscriminator(nn.Module):
    def __init__(self, image_shape: Sequence[int], num_classes: int = 0, ndf: int = 64):
        super().__init__()
        check_dims(num_classes=num_classes)
        channels, side, _ = _check_image_shape(image_shape)
        self.num_classes, self.image_shape = num_classes, tuple(image_shape)
        self.net = nn.Sequential(
            # (B, C + K, side, side) -> (B, ndf, side/2, side/2); no BatchNorm on the input layer
            nn.Conv2d(channels + num_classes, ndf, 4, 2, 1),
            nn.LeakyReLU(0.2, inplace=True),
            # -> (B, 2ndf, side/4, side/4)
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            # -> (B, 1, 1, 1)
            nn.Conv2d(ndf * 2, 1, side // 4, 1, 0),
        )
        self.apply(dcgan_init)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes:
            b, _, h, w = x.shape
            maps = one_hot(labels, self.num_classes, x)[:, :, None, None].expand(b, self.num_classes, h, w)
            x = torch.cat([x, maps], dim=1)  # (B, C + K, H, W)
        return self.net(x).view(-1)  # (B,) logits

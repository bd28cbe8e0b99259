"""DCGAN networks (Radford et al., 2015) sized for small images such as MNIST's 28x28.

The generator grows a 4x smaller map twice with stride-2 transposed convolutions; the discriminator
mirrors it with stride-2 convolutions. `n_extra_layers` adds 3x3 stride-1 convolutions at the half-size
map of both (as `n_extra_layers` in the WGAN authors' DCGAN code): more depth for little compute.
Conditional versions (num_classes > 0) follow the classic cGAN recipe: the one-hot label (B, K, 1, 1) is
concatenated to the noise, and one-hot label maps (B, K, H, W) to the discriminator's input image.
"""

from collections.abc import Sequence

import torch
from torch import nn

from gan_lightning.networks.common import (
    MinibatchStd,
    Projection,
    apply_spectral_norm,
    check_conditioning,
    check_dims,
    dcgan_init,
    one_hot,
)


def _check_image_shape(image_shape: Sequence[int]) -> tuple[int, int, int]:
    channels, height, width = image_shape
    if height != width or height % 4:
        raise ValueError(f"DCGAN networks need square images with a side divisible by 4, got {height}x{width}")
    return channels, height, width


def _check_layer_sizes(n_extra_layers: int, fc_units: int) -> None:
    for name, value in (("n_extra_layers", n_extra_layers), ("fc_units", fc_units)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {value!r}")


class DCGANGenerator(nn.Module):
    def __init__(
        self, noise_dim: int, image_shape: Sequence[int], num_classes: int = 0, ngf: int = 64, n_extra_layers: int = 0,
        fc_units: int = 0,
    ):
        super().__init__()
        check_dims(noise_dim, num_classes)
        _check_layer_sizes(n_extra_layers, fc_units)
        channels, side, _ = _check_image_shape(image_shape)
        self.noise_dim, self.num_classes, self.image_shape = noise_dim, num_classes, tuple(image_shape)
        # (B, noise_dim + K) -> (B, fc_units): InfoGAN's first layer; none by default
        self.fc = nn.Sequential(nn.Linear(noise_dim + num_classes, fc_units, bias=False), nn.BatchNorm1d(fc_units),
                                nn.ReLU(inplace=True)) if fc_units else None
        self.net = nn.Sequential(
            # (B, noise_dim + K [or fc_units], 1, 1) -> (B, 4ngf, side/4, side/4)
            nn.ConvTranspose2d(fc_units or noise_dim + num_classes, ngf * 4, side // 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(inplace=True),
            # -> (B, 2ngf, side/2, side/2)
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(inplace=True),
            # n_extra_layers x (B, 2ngf, side/2, side/2)
            *[
                layer
                for _ in range(n_extra_layers)
                for layer in (nn.Conv2d(ngf * 2, ngf * 2, 3, 1, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True))
            ],
            # -> (B, C, side, side)
            nn.ConvTranspose2d(ngf * 2, channels, 4, 2, 1),
            nn.Tanh(),
        )
        self.apply(dcgan_init)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes:
            z = torch.cat([z, one_hot(labels, self.num_classes, z)], dim=1)  # (B, noise_dim + K)
        if self.fc is not None:
            z = self.fc(z)  # (B, fc_units)
        return self.net(z[:, :, None, None])  # (B, C, H, W) in [-1, 1]


class DCGANDiscriminator(nn.Module):
    """Strided convs with LeakyReLU down to one logit per image.

    `batch_norm` (the DCGAN recipe) or `spectral_norm` (SNGAN) stabilise D. For the conditional GAN,
    `conditioning="concat"` feeds one-hot label maps with the image; `"projection"` adds <embed(y), h> to the
    logit instead, h being the features the final layer sees (a projection discriminator). `minibatch_std` > 0
    appends the standard deviation over groups of that many images as one more channel before the last strided
    conv (ProGAN), against mode collapse. `class_head` adds a linear classifier of the same features, K class
    logits per image (`with_classes=True`), for the auxiliary classification loss of AC-GAN (Odena et al., 2017);
    `head_outputs` > 0 adds a linear head of that many outputs instead, on an unconditional D (InfoGAN's Q, which reads
    G's codes back). `fc_units` > 0 puts a fully connected layer between the last conv and the outputs (InfoGAN's
    MNIST discriminator): the logit and the heads then read its units.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        num_classes: int = 0,
        ndf: int = 64,
        batch_norm: bool = True,
        spectral_norm: bool = False,
        conditioning: str = "concat",
        n_extra_layers: int = 0,
        minibatch_std: int = 0,
        class_head: bool = False,
        head_outputs: int = 0,
        fc_units: int = 0,
    ):
        super().__init__()
        check_dims(num_classes=num_classes)
        if class_head and not num_classes:
            raise ValueError("a class head needs the classes: it is for the conditional GAN only")
        if isinstance(head_outputs, bool) or not isinstance(head_outputs, int) or head_outputs < 0 or (
                head_outputs and class_head):
            raise ValueError(f"head_outputs must be an integer >= 0, and 0 with a class head, got {head_outputs!r}")
        _check_layer_sizes(n_extra_layers, fc_units)
        check_conditioning(conditioning)
        channels, side, _ = _check_image_shape(image_shape)
        self.num_classes, self.image_shape = num_classes, tuple(image_shape)
        self.concat_labels = num_classes if conditioning == "concat" else 0
        self.net = nn.Sequential(
            # (B, C [+ K], side, side) -> (B, ndf, side/2, side/2); no normalisation on the input layer
            nn.Conv2d(channels + self.concat_labels, ndf, 4, 2, 1),
            nn.LeakyReLU(0.2, inplace=True),
            # n_extra_layers x (B, ndf, side/2, side/2)
            *[
                layer
                for _ in range(n_extra_layers)
                for layer in (
                    nn.Conv2d(ndf, ndf, 3, 1, 1, bias=not batch_norm),
                    *([nn.BatchNorm2d(ndf)] if batch_norm else []),
                    nn.LeakyReLU(0.2, inplace=True),
                )
            ],
            # (B, ndf [+ 1], side/2, side/2): the minibatch standard deviation as one more channel
            *([MinibatchStd(minibatch_std)] if minibatch_std else []),
            # -> (B, 2ndf, side/4, side/4)
            nn.Conv2d(ndf + (1 if minibatch_std else 0), ndf * 2, 4, 2, 1, bias=not batch_norm),
            *([nn.BatchNorm2d(ndf * 2)] if batch_norm else []),
            nn.LeakyReLU(0.2, inplace=True),
            # -> (B, fc_units): InfoGAN's fully connected layer; none by default
            *([nn.Flatten(), nn.Linear(ndf * 2 * (side // 4) ** 2, fc_units, bias=not batch_norm),
               *([nn.BatchNorm1d(fc_units)] if batch_norm else []), nn.LeakyReLU(0.2, inplace=True)] if fc_units else []),
            # -> (B, 1): a linear map of the features (2ndf * side/4 * side/4, or fc_units)
            nn.Linear(fc_units, 1) if fc_units else nn.Conv2d(ndf * 2, 1, side // 4, 1, 0),
        )
        features = fc_units or ndf * 2 * (side // 4) ** 2
        self.projection = Projection(num_classes, features) if num_classes and conditioning == "projection" else None
        head = num_classes if class_head else head_outputs
        self.class_head = nn.Linear(features, head) if head else None  # (its name from AC-GAN, the first to use it)
        self.apply(dcgan_init)
        if spectral_norm:
            apply_spectral_norm(self)

    def forward(
        self, x: torch.Tensor, labels: torch.Tensor | None = None, with_classes: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The real/fake logit of each image (B,); `with_classes`: also the head's outputs (B, K)."""
        if self.concat_labels:
            b, _, h, w = x.shape
            maps = one_hot(labels, self.num_classes, x)[:, :, None, None].expand(b, self.num_classes, h, w)
            x = torch.cat([x, maps], dim=1)  # (B, C + K, H, W)
        features = self.net[:-1](x)  # (B, 2ndf, side/4, side/4), or (B, fc_units)
        logits = self.net[-1](features).view(-1)  # (B,)
        if self.projection is not None:
            logits = logits + self.projection(features.flatten(1), labels)
        if not with_classes:
            return logits
        assert self.class_head is not None, "a head's outputs need a discriminator built with a head"
        return logits, self.class_head(features.flatten(1))

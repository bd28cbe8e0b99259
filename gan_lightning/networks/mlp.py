"""The Vanilla GAN: fully connected generator and discriminator (Goodfellow et al., 2014)."""

from collections.abc import Sequence
from math import prod

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


class MLPGenerator(nn.Module):
    """z (B, noise_dim) [+ one-hot label] -> Linear/BatchNorm/LeakyReLU blocks -> Tanh image (B, C, H, W)."""

    def __init__(
        self,
        noise_dim: int,
        image_shape: Sequence[int],
        num_classes: int = 0,
        hidden_dims: Sequence[int] = (256, 512, 1024),
        batch_norm: bool = True,
    ):
        super().__init__()
        check_dims(noise_dim, num_classes)
        self.noise_dim, self.num_classes, self.image_shape = noise_dim, num_classes, tuple(image_shape)
        layers, width = [], noise_dim + num_classes
        for i, hidden in enumerate(hidden_dims):
            layers.append(nn.Linear(width, hidden))
            if batch_norm and i > 0:  # no normalisation right on the noise
                layers.append(nn.BatchNorm1d(hidden))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            width = hidden
        layers += [nn.Linear(width, prod(self.image_shape)), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes:
            z = torch.cat([z, one_hot(labels, self.num_classes, z)], dim=1)  # (B, noise_dim + K)
        return self.net(z).view(-1, *self.image_shape)  # (B, C, H, W)


class MLPDiscriminator(nn.Module):
    """Image (B, C, H, W) [+ label] -> Linear/LeakyReLU blocks -> one logit per image (B,).

    `spectral_norm` normalises every linear layer (SNGAN). `minibatch_std` > 0 appends the standard deviation
    over groups of that many images to the input of the last hidden layer (ProGAN), against mode collapse. For
    the conditional GAN, `conditioning="concat"` appends the one-hot label to the pixels; `"projection"` adds
    <embed(y), h> to the logit, h being the last hidden features.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        num_classes: int = 0,
        hidden_dims: Sequence[int] = (512, 256),
        dropout: float = 0.0,
        spectral_norm: bool = False,
        conditioning: str = "concat",
        minibatch_std: int = 0,
    ):
        super().__init__()
        check_dims(num_classes=num_classes)
        check_conditioning(conditioning)
        self.num_classes, self.image_shape = num_classes, tuple(image_shape)
        self.concat_labels = num_classes if conditioning == "concat" else 0
        layers, width = [], prod(self.image_shape) + self.concat_labels
        widths = [*hidden_dims, 1]
        for i, out in enumerate(widths):
            if minibatch_std and i == max(len(widths) - 2, 0):  # into the last hidden layer (or the output)
                layers.append(MinibatchStd(minibatch_std))
                width += 1
            layers.append(nn.Linear(width, out))
            if i < len(hidden_dims):
                layers.append(nn.LeakyReLU(0.2, inplace=True))
                if dropout:
                    layers.append(nn.Dropout(dropout))
            width = out
        features = layers[-1].in_features  # what the output layer (and the projection) sees
        self.net = nn.Sequential(*layers)
        self.projection = Projection(num_classes, features) if num_classes and conditioning == "projection" else None
        if spectral_norm:
            apply_spectral_norm(self)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = x.flatten(1)  # (B, C*H*W)
        if self.concat_labels:
            h = torch.cat([h, one_hot(labels, self.num_classes, h)], dim=1)  # (B, C*H*W + K)
        features = self.net[:-1](h)  # (B, hidden_dims[-1])
        logits = self.net[-1](features).view(-1)  # (B,)
        if self.projection is not None:
            logits = logits + self.projection(features, labels)
        return logits

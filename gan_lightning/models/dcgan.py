"""DCGAN (Radford et al., 2016, "Unsupervised Representation Learning with Deep Convolutional GANs"): the shared
alternation with convolutional networks, `conv_generator` (transposed convolutions, BatchNorm, ReLU, Tanh) and
`conv_discriminator` (strided convolutions, LeakyReLU), as conf/model/dcgan.yaml names them. Nothing else to add."""

from gan_lightning.models.base import GAN


class DCGAN(GAN):
    name = "dcgan"

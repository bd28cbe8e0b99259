"""The Vanilla GAN (Goodfellow et al., 2014, "Generative Adversarial Nets"): the shared alternation with fully
connected networks, `mlp_generator` and `mlp_discriminator` (conf/model/vanilla.yaml). Nothing else to add."""

from gan_lightning.models.base import GAN


class VanillaGAN(GAN):
    name = "vanilla"

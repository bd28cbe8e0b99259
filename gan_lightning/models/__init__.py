"""The training logic: one LightningModule per GAN variant, each on the shared D/G alternation of `base.GAN`.

| variant | class | what it adds |
|---|---|---|
| `vanilla` | `VanillaGAN` | fully connected networks (config) |
| `dcgan` | `DCGAN` | convolutional networks (config) |
| `cgan` | `ConditionalGAN` | the digit as an input of G and D, AC-GAN's class loss, a grid row per digit |
| `infogan` | `InfoGAN` | latent codes beside the noise, Q reading them back, the mutual-information term |
"""

from gan_lightning import options
from gan_lightning.models.base import GAN
from gan_lightning.models.conditional import ConditionalGAN
from gan_lightning.models.dcgan import DCGAN
from gan_lightning.models.infogan import InfoGAN
from gan_lightning.models.vanilla import VanillaGAN

# every variant by its registered name, as checkpoints record it
VARIANTS: dict[str, type[GAN]] = {cls.name: cls for cls in (VanillaGAN, DCGAN, ConditionalGAN, InfoGAN)}
assert VARIANTS.keys() == options.VARIANTS.keys(), "options.VARIANTS names every variant"

__all__ = ["DCGAN", "GAN", "VARIANTS", "ConditionalGAN", "InfoGAN", "VanillaGAN"]

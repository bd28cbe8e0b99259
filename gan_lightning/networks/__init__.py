"""Generators and discriminators: plain `nn.Module`s that know nothing of Lightning or Hydra.

Every network takes `noise_dim` (generators), `image_shape` (C, H, W) and `num_classes` (0 for an
unconditional model); a conditional network takes the digit labels as a second argument.
"""

from gan_lightning.networks.dcgan import DCGANDiscriminator, DCGANGenerator
from gan_lightning.networks.mlp import MLPDiscriminator, MLPGenerator

__all__ = ["DCGANDiscriminator", "DCGANGenerator", "MLPDiscriminator", "MLPGenerator"]

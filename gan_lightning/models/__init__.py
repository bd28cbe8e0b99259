from gan_lightning.models.gan import GAN

__all__ = ["GAN"]

from gan_lightning.data.datamodule import MNISTDataModule
from gan_lightning.data.mnist import load_mnist

__all__ = ["MNISTDataModule", "load_mnist"]

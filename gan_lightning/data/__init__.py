from gan_lightning.data.datamodule import ImageDataModule
from gan_lightning.data.datasets import DATASETS, IDXDataset, get_dataset, load_mnist

__all__ = ["DATASETS", "IDXDataset", "ImageDataModule", "get_dataset", "load_mnist"]

"""MNIST as a LightningDataModule: decoded once into uint8 tensors, batches cut straight from them.

Batches travel as uint8 (four times smaller than float) and are scaled to [-1, 1], to match the
generator's Tanh, after they reach the device; the optional random-rotation augmentation runs there too,
on whole batches.
"""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from gan_lightning.data.mnist import load_mnist
from gan_lightning.errors import UserError


class TensorBatches(Dataset):
    """Indexable by a list of indices, so a `BatchSampler` cuts a whole batch with one tensor gather."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, indices):
        return self.images[indices], self.labels[indices]  # (B, H, W) uint8, (B,) int64


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W) in [0, 255] -> float (B, 1, H, W) in [-1, 1]."""
    return images.unsqueeze(1).float().div_(127.5).sub_(1.0)


def random_rotation(images: torch.Tensor, max_degrees: float, generator=None) -> torch.Tensor:
    """Rotate each image of (B, C, H, W) by its own angle drawn from [-max_degrees, max_degrees]."""
    angles = (torch.rand(images.shape[0], device=images.device, generator=generator) * 2 - 1) * math.radians(max_degrees)
    cos, sin, zero = angles.cos(), angles.sin(), torch.zeros_like(angles)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    # pad with the background value (-1) rather than 0, which is mid-grey in [-1, 1]
    return F.grid_sample(images + 1, grid, align_corners=False, padding_mode="zeros") - 1


class MNISTDataModule(L.LightningDataModule):
    def __init__(
        self,
        data_dir: str | None = None,
        download: bool = False,
        batch_size: int = 128,
        val_size: int = 5000,
        split_seed: int = 0,
        rotation: float = 0.0,
        num_workers: int = 0,
        pin_memory: bool = False,
    ):
        super().__init__()
        if batch_size <= 0:
            raise UserError(f"data.batch_size must be a positive integer, got {batch_size}")
        if val_size < 0:
            raise UserError(f"data.val_size must be >= 0, got {val_size}")
        if not 0 <= rotation <= 180:
            raise UserError(f"data.rotation must be between 0 and 180 degrees, got {rotation}")
        if download and data_dir is None:
            raise UserError("data.download=true needs data.data_dir: the folder to download MNIST into")
        self.data_dir, self.download = data_dir, download
        self.batch_size, self.val_size, self.split_seed = batch_size, val_size, split_seed
        self.rotation, self.num_workers, self.pin_memory = rotation, num_workers, pin_memory
        self.train_set: TensorBatches | None = None
        self.val_set: TensorBatches | None = None

    def prepare_data(self) -> None:
        if self.download:
            from torchvision.datasets import MNIST

            MNIST(self.data_dir, train=True, download=True)
            MNIST(self.data_dir, train=False, download=True)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        images, labels = load_mnist("train", self.data_dir)
        if self.val_size >= len(labels):
            raise UserError(f"data.val_size={self.val_size} leaves no training images (the set has {len(labels)})")
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(self.split_seed))
        train_idx, val_idx = order[self.val_size :], order[: self.val_size]
        self.train_set = TensorBatches(images[train_idx], labels[train_idx])
        self.val_set = TensorBatches(images[val_idx], labels[val_idx])
        if self.batch_size > len(self.train_set):
            raise UserError(f"data.batch_size={self.batch_size} is larger than the {len(self.train_set)} training images")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the images, read from the data."""
        self.setup()
        return (1, *self.train_set.images.shape[1:])

    @property
    def num_classes(self) -> int:
        """The number of digit classes, read from the labels."""
        self.setup()
        return int(self.train_set.labels.max()) + 1

    def _loader(self, dataset: TensorBatches, shuffle: bool, drop_last: bool) -> DataLoader:
        sampler = RandomSampler(dataset) if shuffle else SequentialSampler(dataset)
        return DataLoader(
            dataset,
            batch_size=None,  # the BatchSampler yields whole batches of indices
            sampler=BatchSampler(sampler, self.batch_size, drop_last=drop_last),
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False, drop_last=False)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        images, labels = batch
        images = to_unit_range(images)  # (B, 1, H, W) in [-1, 1]
        if self.rotation and self.trainer is not None and self.trainer.training:
            images = random_rotation(images, self.rotation)
        return images, labels

"""A dataset of `datasets.py` (MNIST, Fashion-MNIST) as a LightningDataModule: decoded once into uint8 tensors,
batches cut straight from them.

Batches travel as uint8 (four times smaller than float) and are scaled to [-1, 1], to match the
generator's Tanh, after they reach the device; the optional random-rotation augmentation runs there too,
on whole batches. Training on a GPU, the whole uint8 set (47 MB) moves there once and batches are cut
there, so no batch crosses the bus. Under DDP each process (rank) takes its own share of every epoch's
batches: the samplers here split the data themselves, so Lightning does not add a `DistributedSampler`.
"""

import math
import warnings

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from gan_lightning.data.datasets import ImageDataset, make_dataset
from gan_lightning.data.scaling import to_model_range
from gan_lightning.errors import UserError

MIN_VAL_SIZE = 8  # the quality metrics' nearest-neighbour balls need more than 5 real images


class TensorBatches(Dataset):
    """Indexable by a tensor of indices, so a batch sampler cuts a whole batch with one tensor gather."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, indices):
        return self.images[indices], self.labels[indices]  # (B, H, W) uint8, (B,) int64


def random_rotation(images: torch.Tensor, max_degrees: float, generator=None) -> torch.Tensor:
    """Rotate each image of (B, C, H, W) by its own angle drawn from [-max_degrees, max_degrees]."""
    angles = (torch.rand(images.shape[0], device=images.device, generator=generator) * 2 - 1) * math.radians(max_degrees)
    cos, sin, zero = angles.cos(), angles.sin(), torch.zeros_like(angles)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    # pad with the background value (-1) rather than 0, which is mid-grey in [-1, 1]
    return F.grid_sample(images + 1, grid, align_corners=False, padding_mode="zeros") - 1


class EpochShuffledBatches(DistributedSampler):
    """Batches of indices in an order that depends only on (seed, epoch), so an epoch can be replayed exactly;
    after `skip(n)` the next pass starts at batch n of the epoch (resuming mid-epoch).

    With `num_replicas` processes, rank r takes samples r, r + num_replicas, ... of the epoch's order (as
    `DistributedSampler` does, which is why Lightning leaves it in place), so the ranks' batches are disjoint,
    and together the first `len(self) * batch_size * num_replicas` samples of the order; every rank has the
    same number of batches. `drop_last=False` (validation) pads the order with its first samples instead, so
    that every sample is seen. `shuffle=False`: the order is 0, 1, 2, ...; `device`: where the index tensors
    are made, so that cutting a batch from data on a GPU needs no copy from the host."""

    def __init__(
        self,
        dataset_size: int,
        batch_size: int,
        seed: int,
        drop_last: bool = True,
        shuffle: bool = True,
        num_replicas: int = 1,
        rank: int = 0,
        device: torch.device | str = "cpu",
    ):
        super().__init__(range(dataset_size), num_replicas, rank, shuffle=shuffle, seed=seed, drop_last=drop_last)
        self.dataset_size, self.batch_size, self.device = dataset_size, batch_size, torch.device(device)
        self._skip = 0

    def set_epoch(self, epoch: int) -> None:  # Lightning calls it at the start of every epoch
        if epoch != self.epoch:  # a skip belongs to the epoch it was restored for
            self._skip = 0
        self.epoch = epoch

    def skip(self, batches: int) -> None:
        self._skip = batches

    def __len__(self) -> int:
        # DistributedSampler's num_samples: the samples of each rank, dataset_size // num_replicas with
        # drop_last, else rounded up
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    def __iter__(self):
        # the order is drawn when the first batch is asked for, i.e. after Lightning's set_epoch; on the CPU
        # whatever the device, so it is the same everywhere
        if self.shuffle:
            rng = torch.Generator().manual_seed((self.seed + self.epoch) % 2**63)
            order = torch.randperm(self.dataset_size, generator=rng)
        else:
            order = torch.arange(self.dataset_size)
        if self.total_size > self.dataset_size:  # drop_last=False: pad with the first samples
            order = torch.cat([order, order[: self.total_size - self.dataset_size]])
        mine = order[self.rank : self.total_size : self.num_replicas].to(self.device)  # (num_samples,)
        start, self._skip = self._skip, 0
        for b in range(start, len(self)):
            yield mine[b * self.batch_size : (b + 1) * self.batch_size]  # (B,) int64


class ResumableLoader(DataLoader):
    """A DataLoader over `EpochShuffledBatches` that Lightning saves in and restores from checkpoints (it has
    `state_dict`/`load_state_dict`): the shuffle seed, the epoch and how many of its batches were handed out.
    Counted here rather than in the sampler, since worker processes fetch indices ahead of the training loop."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.batches_handed_out = 0

    def __iter__(self):
        batches = self.sampler
        self.batches_handed_out = batches._skip
        for batch in super().__iter__():
            self.batches_handed_out += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        batches = self.sampler
        state = {"seed": batches.seed, "epoch": batches.epoch, "batches": self.batches_handed_out}
        if batches.num_replicas > 1:  # batches per rank, under DDP
            state["num_replicas"] = batches.num_replicas
        return state

    def load_state_dict(self, state: dict[str, int]) -> None:
        batches = self.sampler
        batches.seed = state["seed"]
        batches.set_epoch(state["epoch"])
        # the ranks together have trained on the first `done` samples of the epoch's order, whatever their
        # number, so a run resumed on a different number of processes skips (about) the same samples
        done = state["batches"] * batches.batch_size * state.get("num_replicas", 1)
        batches.skip(done // (batches.batch_size * batches.num_replicas) % max(len(batches), 1))


class ImageDataModule(L.LightningDataModule):
    """The training and validation splits of `dataset`'s train split (its test split stays for `evaluate.py`); the
    dataset record (`self.dataset`, `datasets.make_dataset`) brings the image shape, the class names and the feature
    network. `val_size` None: a tenth of the training images (at least `MIN_VAL_SIZE`), for a folder of any size."""

    def __init__(
        self,
        dataset: str | ImageDataset = "mnist",
        data_dir: str | None = None,
        download: bool = False,
        batch_size: int = 128,
        val_size: int | None = 5000,
        split_seed: int = 0,
        rotation: float = 0.0,
        shuffle_seed: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        on_device: bool | None = None,
        image_size: int | None = None,
        classifier: str | None = None,
    ):
        super().__init__()
        # the values come checked from the config (`gan_lightning.config.validate`)
        assert batch_size >= 1 and (val_size is None or val_size >= 0) and 0 <= rotation <= 180, (batch_size, rotation)
        assert not (download and data_dir is None) and not (on_device and num_workers > 0)
        self.dataset = make_dataset(dataset, data_dir, image_size, classifier) if isinstance(dataset, str) else dataset
        self.data_dir, self.download = data_dir, download
        self.batch_size, self.val_size, self.split_seed = batch_size, val_size, split_seed
        self.rotation, self.num_workers, self.pin_memory = rotation, num_workers, pin_memory
        # the training order of epoch e is a permutation seeded by shuffle_seed + e; None: torch's initial
        # seed, i.e. the run's `seed` after seed_everything (and a random one in an unseeded run), rank 0's
        # under DDP
        self.shuffle_seed = shuffle_seed
        # keep the whole data set on the training device (a GPU) and cut batches there; None: on a GPU when
        # batches are cut in the training process (num_workers=0)
        self.on_device = on_device
        # which share of the batches this process takes, the seed of the order, where the data set lies:
        # set from the trainer in `setup`
        self.rank, self.num_replicas = 0, 1
        self.order_seed: int | None = None
        self.data_device = torch.device("cpu")
        self.train_set: TensorBatches | None = None
        self.val_set: TensorBatches | None = None

    def prepare_data(self) -> None:
        if self.download:
            self.dataset.download()

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            self._load()
        if self.trainer is None:
            return
        self.rank, self.num_replicas = self.trainer.global_rank, self.trainer.world_size
        # one data order for all ranks, also in an unseeded run (where each process has its own initial seed)
        seed = torch.initial_seed() if self.shuffle_seed is None else self.shuffle_seed
        self.order_seed = self.trainer.strategy.broadcast(seed, src=0)
        device = self.trainer.strategy.root_device
        on_device = self.on_device if self.on_device is not None else device.type == "cuda" and self.num_workers == 0
        if on_device and device != self.data_device:
            self.data_device = device
            # Lightning's advice to add loader workers does not apply to batches cut on the GPU
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            self.train_set = TensorBatches(self.train_set.images.to(device), self.train_set.labels.to(device))
            self.val_set = TensorBatches(self.val_set.images.to(device), self.val_set.labels.to(device))

    def _load(self) -> None:
        # the first load can come before Lightning's prepare_data call (image_shape and num_classes are read when
        # the model is built): download first, which does nothing once the files are there
        self.prepare_data()
        images, labels = self.dataset.load("train")
        val_size = self.val_size if self.val_size is not None else max(MIN_VAL_SIZE, len(labels) // 10)
        if val_size >= len(labels):
            raise UserError(f"data.val_size={val_size} leaves no training images (the set has {len(labels)})")
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(self.split_seed))
        train_idx, val_idx = order[val_size:], order[:val_size]
        self.train_set = TensorBatches(images[train_idx], labels[train_idx])
        self.val_set = TensorBatches(images[val_idx], labels[val_idx])
        if self.batch_size > len(self.train_set):
            raise UserError(f"data.batch_size={self.batch_size} is larger than the {len(self.train_set)} training images")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the images: the dataset's. Reads the data first, so that a missing or bad file stops a run
        before it starts."""
        self.setup()
        return self.dataset.image_shape

    @property
    def num_classes(self) -> int:
        """The number of classes: the dataset's class names."""
        return self.dataset.num_classes

    def _loader(self, dataset: TensorBatches, batches: EpochShuffledBatches, seed: int, loader=DataLoader):
        on_device = self.data_device.type != "cpu"
        return loader(
            dataset,
            batch_size=None,  # the sampler yields whole batches of indices
            sampler=batches,
            # its own generator: a DataLoader otherwise draws its workers' base seed from torch's global RNG at
            # every iter(), which would shift the training noise between a run and its resumed copy
            generator=torch.Generator().manual_seed(seed),
            num_workers=0 if on_device else self.num_workers,
            pin_memory=self.pin_memory and not on_device,
            persistent_workers=self.num_workers > 0 and not on_device,
        )

    def _batches(self, dataset: TensorBatches, seed: int, train: bool) -> EpochShuffledBatches:
        return EpochShuffledBatches(
            len(dataset), self.batch_size, seed, drop_last=train, shuffle=train,
            num_replicas=self.num_replicas, rank=self.rank, device=self.data_device,
        )

    def train_dataloader(self) -> ResumableLoader:
        seed = self.order_seed
        if seed is None:  # not set up by a trainer
            seed = torch.initial_seed() if self.shuffle_seed is None else self.shuffle_seed
        return self._loader(self.train_set, self._batches(self.train_set, seed, train=True), seed, ResumableLoader)

    def val_dataloader(self) -> DataLoader:
        # every rank its share of the validation set (padded to equal shares with its first images)
        return self._loader(self.val_set, self._batches(self.val_set, self.split_seed, train=False), self.split_seed)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        images, labels = batch
        images = to_model_range(images)  # (B, 1, H, W) in [-1, 1]
        if self.rotation and self.trainer is not None and self.trainer.training:
            images = random_rotation(images, self.rotation)
        return images, labels

"""The datasets a GAN trains on, each one record: its name, where its files come from, its image shape, its class
names and the feature network that judges samples of it (`metrics.classifier`). Nothing else in the package names
a dataset: the data module, the metrics, the tools and the demo read these records.

A dataset here is published as the four IDX files of MNIST's release (train and test images and labels). Every
load checks the MD5 of the decompressed bytes against the original release, so a truncated or corrupt file is an
error that names the file, never silently wrong data. A third such dataset (KMNIST, say) is one more record below
and one config under `conf/data/`.
"""

import dataclasses
import functools
import gzip
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from gan_lightning.errors import UserError

BUNDLED_DIR = Path(__file__).parent / "raw"
SPLIT_PREFIX = {"train": "train", "test": "t10k"}


@dataclass(frozen=True)
class IDXDataset:
    """A dataset of grey images in four IDX files.

    `md5`: of each file's decompressed bytes, as published; `torchvision`: the name of torchvision's dataset class,
    which is also its folder name (`DIR/<torchvision>/raw/`) and fetches the files with `data.download=true`;
    `default_dir`: where the files are looked for (`at(data_dir)`: the record that looks in `data.data_dir`);
    `train_size`: images in the train files; the feature network trains on train[:held_out_start] and never sees
    the rest, which serves as the real-data reference row; `install_hint`: how else to get the files."""

    name: str
    title: str
    class_names: tuple[str, ...]
    md5: dict[str, str] = field(hash=False)
    torchvision: str
    default_dir: Path = BUNDLED_DIR
    train_size: int = 60_000
    held_out_start: int = 50_000
    install_hint: str = ""
    class_word: str = "class"  # what the tools call a class: MNIST's are digits

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def held_out_images(self) -> int:
        """Training images the feature network never saw: the most a real-data row can score."""
        return self.train_size - self.held_out_start

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (1, 28, 28)

    @property
    def classifier_path(self) -> Path:
        """The feature network's weights (and the .json record beside them) shipped with the package."""
        return Path(__file__).parents[1] / "metrics" / "weights" / f"{self.name}_classifier.pt"

    def at(self, data_dir: str | Path | None) -> "IDXDataset":
        """This dataset with its files looked for in `data_dir` (None: where they are by default)."""
        return self if data_dir is None else dataclasses.replace(self, default_dir=Path(data_dir).expanduser())

    @property
    def bundled(self) -> bool:
        return self.default_dir == BUNDLED_DIR

    def folders(self) -> list[Path]:
        root = self.default_dir
        return [root / self.torchvision / "raw", root / "raw", root]

    def _lookup(self, name: str) -> Path | None:
        for folder in self.folders():
            for candidate in (folder / name, folder / f"{name}.gz"):
                if candidate.is_file():
                    return candidate
        return None

    def find_file(self, name: str) -> Path:
        """Where the IDX file `name` lies: in the dataset's folder, its `raw` or its `<torchvision>/raw` subfolder
        (torchvision's layout); compressed (`.gz`) or not."""
        found = self._lookup(name)
        if found is not None:
            return found
        if self.bundled:
            raise UserError(f"{self.title} file {name} not found in the bundled data folder; reinstall the package")
        raise UserError(
            f"{self.title} file {name} not found in {self.default_dir}: point data.data_dir at a folder with the four "
            f"{self.title} "
            f"IDX files (or torchvision's {self.torchvision}/raw layout), add data.download=true to fetch them"
            + (f", or {self.install_hint}" if self.install_hint else ""))

    def download(self) -> None:
        """Fetch the four files into `<folder>/<torchvision>/raw` with torchvision's downloader, unless the folder
        already holds them all where `find_file` looks (then nothing is fetched and no network is needed)."""
        if all(self._lookup(name) is not None for name in self.md5):
            return
        assert not self.bundled, "the bundled folder is not downloaded into"
        data_dir = self.default_dir
        import torchvision.datasets

        try:  # fetches all four files and checks their MD5
            getattr(torchvision.datasets, self.torchvision)(data_dir, train=True, download=True)
        except (OSError, RuntimeError) as e:  # no network, a folder that cannot be made, a corrupt download
            lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
            reason = lines[-1] if lines else type(e).__name__
            raise UserError(
                f"data.download=true: could not download {self.title} into {data_dir} ({reason}); check the "
                f"connection and that the folder can be written, or put the four {self.title} files in it by hand"
            ) from None

    def load(self, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
        """Images as uint8 (N, H, W) with 0 = black background, labels as int64 (N,)."""
        if split not in SPLIT_PREFIX:
            raise UserError(f"unknown {self.title} split {split!r}; use 'train' or 'test'")
        prefix = SPLIT_PREFIX[split]
        images_name, labels_name = f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"
        images = read_idx(self.find_file(images_name), self.md5[images_name], self.title)
        labels = read_idx(self.find_file(labels_name), self.md5[labels_name], self.title)
        if len(images) != len(labels) or images.shape[1:] != self.image_shape[1:] or labels.max() >= self.num_classes:
            raise UserError(f"the {self.title} {split} files hold {images.shape} images for {labels.shape} labels; "
                            "replace them with the original release")
        # torch.from_numpy shares memory with the cached read-only array: copy once.
        return torch.tensor(images), torch.tensor(labels, dtype=torch.int64)


@functools.lru_cache(maxsize=8)
def read_idx(path: Path, expected_md5: str | None = None, title: str = "IDX") -> np.ndarray:
    """Decode one IDX file (gzip or plain) into a uint8 array, checking its MD5 when one is given."""
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise UserError(f"cannot read {title} file {path}: {e}; replace it with an intact copy") from None
    if expected_md5 is not None and hashlib.md5(raw).hexdigest() != expected_md5:
        raise UserError(f"{title} file {path} is corrupt (MD5 mismatch); replace it with an intact copy")
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise UserError(f"{path} is not a uint8 IDX file")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise UserError(f"{path} is truncated: header says {shape}, found {data.size} values")
    return data.reshape(shape)


MNIST = IDXDataset(
    name="mnist",
    title="MNIST",
    class_names=tuple(str(digit) for digit in range(10)),
    md5={
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
    torchvision="MNIST",
    class_word="digit",
)

FASHION_MNIST = IDXDataset(
    name="fashion_mnist",
    title="Fashion-MNIST",
    class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot"),
    md5={
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
    torchvision="FashionMNIST",
    # where the Debian/Ubuntu package dataset-fashion-mnist installs the four files
    default_dir=Path("/usr/share/datasets/fashion-mnist"),
    install_hint="on Debian or Ubuntu, apt install dataset-fashion-mnist",
)

DATASETS = {dataset.name: dataset for dataset in (MNIST, FASHION_MNIST)}


def get_dataset(name: str) -> IDXDataset:
    """The dataset record of this name (`data.dataset`, a checkpoint's `dataset`)."""
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; use one of {', '.join(DATASETS)}")
    return DATASETS[name]


def load_mnist(split: str = "train", data_dir: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST's images (N, 28, 28) uint8 and labels (N,): `MNIST.load`."""
    return MNIST.at(data_dir).load(split)

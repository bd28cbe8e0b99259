"""The datasets a GAN trains on, each one record (`ImageDataset`): its name, where its files come from, its image
shape, its class names and the feature network that judges samples of it (`metrics.classifier`). Nothing else in
the package names a dataset: the data module, the metrics, the tools and the demo read these records.

A published dataset comes as the four IDX files of MNIST's release (train and test images and labels,
`IDXDataset`). Every load checks the MD5 of the decompressed bytes against the original release, so a truncated or
corrupt file is an error that names the file, never silently wrong data. A third such dataset (KMNIST, say) is one
more record below and one config under `conf/data/`. The user's own images are a folder with one sub-folder per
class (`ImageFolder`, `data=image_folder`).
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


@dataclass(frozen=True, kw_only=True)
class ImageDataset:
    """What the package reads from a dataset, whatever its files: grey images (1, image_size, image_size) of
    `class_names`, a "train" split of `train_size` images and a "test" split. The feature network (`classifier`, its
    weights; None: there is none yet) trains on train[:held_out_start] and never sees the rest, which serves as the
    real-data reference row of every evaluation. `class_word`: what the tools call a class (MNIST's are digits).
    `about` and `licence`: what the images are and under which terms, for the model card of a model that learnt
    them."""

    name: str
    title: str
    class_names: tuple[str, ...]
    train_size: int
    held_out_start: int
    image_size: int = 28
    classifier: Path | None = None
    class_word: str = "class"
    about: str = ""
    licence: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def held_out_images(self) -> int:
        """Training images the feature network never saw: the most a real-data row can score."""
        return self.train_size - self.held_out_start

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (1, self.image_size, self.image_size)

    @property
    def classifier_path(self) -> Path | None:
        """The feature network's weights (and the .json record beside them); None: none to judge samples with."""
        return self.classifier

    def load(self, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
        """Images as uint8 (N, H, W), labels as int64 (N,)."""
        raise NotImplementedError

    def at(self, data_dir: str | Path | None) -> "ImageDataset":
        """This dataset with its files looked for in `data_dir` (None: where they are by default)."""
        raise NotImplementedError

    def download(self) -> None:
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class IDXDataset(ImageDataset):
    """A dataset of grey images in four IDX files.

    `md5`: of each file's decompressed bytes, as published; `torchvision`: the name of torchvision's dataset class,
    which is also its folder name (`DIR/<torchvision>/raw/`) and fetches the files with `data.download=true`;
    `default_dir`: where the files are looked for (`at(data_dir)`: the record that looks in `data.data_dir`);
    `install_hint`: how else to get the files. Its feature network ships with the package unless `classifier`
    names another."""

    md5: dict[str, str] = field(hash=False)
    torchvision: str
    default_dir: Path = BUNDLED_DIR
    train_size: int = 60_000
    held_out_start: int = 50_000
    install_hint: str = ""

    @property
    def classifier_path(self) -> Path:
        """The feature network's weights (and the .json record beside them): shipped with the package."""
        if self.classifier is not None:
            return self.classifier
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
    about="28x28 grey images in the style of MNIST's writers (American census employees and high school students)",
    licence="MNIST (Yann LeCun, Corinna Cortes and Christopher J.C. Burges), distributed under CC BY-SA 3.0",
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
    about="28x28 grey pictures of Zalando's articles (Xiao, Rasul and Vollgraf, 2017): ten kinds of clothing, shoes "
    "and bags",
    licence="Fashion-MNIST (Zalando Research), distributed under the MIT licence",
)

DATASETS = {dataset.name: dataset for dataset in (MNIST, FASHION_MNIST)}
IMAGE_FOLDER = "image_folder"  # data=image_folder: the user's own images
MIN_FOLDER_IMAGES = 20  # a folder's test and held-out shares take a tenth each, at least 1 image each
FOLDER_SEED = 0  # the folder's images are split in a seeded order, so every class is in every split


def get_dataset(name: str) -> IDXDataset:
    """The dataset record of this name (`data.dataset`, a checkpoint's `dataset`)."""
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; use one of {', '.join(DATASETS)}, or {IMAGE_FOLDER}")
    return DATASETS[name]


def make_dataset(name: str, data_dir: str | Path | None = None, image_size: int | None = None,
                 classifier: str | Path | None = None) -> ImageDataset:
    """The record a data config describes (`data.dataset`, `data.data_dir`, `data.image_size`, `data.classifier`):
    a published dataset where its files are, or the image folder `data_dir`; `classifier`, a feature network of
    one's own (`scripts/train_classifier.py`) instead of the dataset's."""
    classifier = None if classifier is None else Path(classifier).expanduser()
    if name == IMAGE_FOLDER:
        if data_dir is None:
            raise UserError("data=image_folder needs data.data_dir: the folder of your images, one sub-folder per class")
        return ImageFolder.open(data_dir, image_size or 28, classifier)
    dataset = get_dataset(name).at(data_dir)
    if image_size not in (None, dataset.image_size):
        raise UserError(f"data.image_size={image_size}: {dataset.title}'s images are {dataset.image_size}x"
                        f"{dataset.image_size}; data.image_size resizes the images of data=image_folder")
    return dataset if classifier is None else dataclasses.replace(dataset, classifier=classifier)


@dataclass(frozen=True, kw_only=True)
class ImageFolder(ImageDataset):
    """The user's own images: `root` holds one sub-folder per class (its name is the class name) of images in any
    format torchvision's `ImageFolder` reads, converted to one channel and resized to image_size x image_size.

    The images, in a seeded order, are split like a published dataset: a tenth is the "test" split, the rest the
    "train" split, whose last tenth of the whole the feature network never sees (the real-data reference row). Made
    by `open`, which lists the files (`files`: (path, class index) in the seeded order); `load` decodes them once.
    A record without `root` is that of a model's checkpoint: its class names, no files."""

    root: Path | None = None
    files: tuple[tuple[str, int], ...] = field(default=(), hash=False, compare=False, repr=False)
    name: str = IMAGE_FOLDER

    @classmethod
    def open(cls, root: str | Path, image_size: int = 28, classifier: Path | None = None) -> "ImageFolder":
        from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

        root = Path(root).expanduser()
        if not root.is_dir():
            raise UserError(f"data.data_dir={root}: no such folder; give the folder of your images, one sub-folder "
                            "per class")
        try:
            classes, class_to_index = find_classes(str(root))
            found = make_dataset(str(root), class_to_index, extensions=IMG_EXTENSIONS)
        except (FileNotFoundError, OSError) as e:  # no class sub-folder, a class without images, unreadable
            raise UserError(f"data.data_dir={root}: {str(e).splitlines()[0].rstrip('.')}; put each class's images "
                            f"({', '.join(IMG_EXTENSIONS)}) in a sub-folder named after the class") from None
        if len(found) < MIN_FOLDER_IMAGES:
            raise UserError(f"data.data_dir={root} holds {len(found)} images; a GAN needs at least "
                            f"{MIN_FOLDER_IMAGES} (a few hundred for digits it can learn)")
        order = torch.randperm(len(found), generator=torch.Generator().manual_seed(FOLDER_SEED)).tolist()
        share = max(1, len(found) // 10)
        train_size = len(found) - share
        return cls(title=f"image folder {root.name}", class_names=tuple(classes), root=root,
                   files=tuple((found[i][0], found[i][1]) for i in order), train_size=train_size,
                   held_out_start=train_size - share, image_size=image_size, classifier=classifier)

    def at(self, data_dir: str | Path | None) -> "ImageFolder":
        if data_dir is None:
            if self.root is None:
                raise UserError("this model was trained on an image folder: give its folder with data_dir=DIR")
            return self
        folder = ImageFolder.open(data_dir, self.image_size, self.classifier)
        if self.root is None and folder.class_names != self.class_names:
            raise UserError(f"data_dir={data_dir} has the classes {', '.join(folder.class_names)}, not those the "
                            f"model learnt ({', '.join(self.class_names)})")
        return folder

    def download(self) -> None:
        raise UserError("data.download=true fetches a published dataset; an image folder is read as it is")

    def load(self, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
        if split not in SPLIT_PREFIX:
            raise UserError(f"unknown split {split!r}; use 'train' or 'test'")
        if self.root is None:
            raise UserError("this model was trained on an image folder: give its folder with data_dir=DIR")
        images, labels = _decode_folder(self.files, self.image_size)
        part = slice(0, self.train_size) if split == "train" else slice(self.train_size, None)
        return images[part].clone(), labels[part].clone()


@functools.lru_cache(maxsize=2)
def _decode_folder(files: tuple[tuple[str, int], ...], image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image of the folder as uint8 (N, image_size, image_size), one channel (PIL's "L"), and its label."""
    from PIL import Image, UnidentifiedImageError

    images = np.empty((len(files), image_size, image_size), dtype=np.uint8)
    for i, (path, _) in enumerate(files):
        try:
            with Image.open(path) as image:
                grey = image.convert("L")
                if grey.size != (image_size, image_size):
                    grey = grey.resize((image_size, image_size), Image.Resampling.BILINEAR)
                images[i] = np.asarray(grey)
        except (OSError, UnidentifiedImageError, ValueError) as e:
            raise UserError(f"cannot read image {path} ({str(e).splitlines()[0]}); remove or replace it") from None
    return torch.from_numpy(images), torch.tensor([label for _, label in files], dtype=torch.int64)


def load_mnist(split: str = "train", data_dir: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST's images (N, 28, 28) uint8 and labels (N,): `MNIST.load`."""
    return MNIST.at(data_dir).load(split)

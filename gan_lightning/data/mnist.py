"""Reading MNIST from its original IDX files, bundled with the package or in a torchvision-style folder.

Every load checks the MD5 of the decompressed bytes against the original release, so a truncated or
corrupt file is an error that names the file, never silently wrong data.
"""

import functools
import gzip
import hashlib
from pathlib import Path

import numpy as np
import torch

from gan_lightning.errors import UserError

BUNDLED_DIR = Path(__file__).parent / "raw"

# MD5 of the decompressed bytes, as published with the original release.
MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
SPLIT_PREFIX = {"train": "train", "test": "t10k"}


def _lookup(name: str, data_dir: str | Path | None) -> Path | None:
    if data_dir is None:
        folders = [BUNDLED_DIR]
    else:
        root = Path(data_dir).expanduser()
        folders = [root / "MNIST" / "raw", root / "raw", root]
    for folder in folders:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def find_file(name: str, data_dir: str | Path | None = None) -> Path:
    """Where the IDX file `name` lies: the bundled copy, or `data_dir`, `data_dir/raw` or `data_dir/MNIST/raw`
    (torchvision's layout), compressed (`.gz`) or not."""
    found = _lookup(name, data_dir)
    if found is not None:
        return found
    where = "the bundled data folder" if data_dir is None else f"{data_dir} (or its MNIST/raw subfolder)"
    hint = (
        "reinstall the package" if data_dir is None else "point data.data_dir at a torchvision-style MNIST folder, "
        "or add data.download=true"
    )
    raise UserError(f"MNIST file {name} not found in {where}; {hint}")


def download_mnist(data_dir: str | Path) -> None:
    """Fetch the four MNIST files into `data_dir/MNIST/raw` with torchvision's downloader, unless `data_dir` already
    holds them all where `find_file` looks (then nothing is fetched and no network is needed)."""
    if all(_lookup(name, data_dir) is not None for name in MD5):
        return
    from torchvision.datasets import MNIST

    try:
        MNIST(Path(data_dir).expanduser(), train=True, download=True)  # fetches all four files, checks their MD5
    except (OSError, RuntimeError) as e:  # no network, a folder that cannot be made, a corrupt download
        lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
        reason = lines[-1] if lines else type(e).__name__
        raise UserError(
            f"data.download=true: could not download MNIST into {data_dir} ({reason}); check the connection and that "
            "the folder can be written, or put the four MNIST files in it by hand"
        ) from None


@functools.lru_cache(maxsize=8)
def read_idx(path: Path, expected_md5: str | None = None) -> np.ndarray:
    """Decode one IDX file (gzip or plain) into a uint8 array, checking its MD5 when one is given."""
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise UserError(f"cannot read MNIST file {path}: {e}; replace it with an intact copy") from None
    if expected_md5 is not None and hashlib.md5(raw).hexdigest() != expected_md5:
        raise UserError(f"MNIST file {path} is corrupt (MD5 mismatch); replace it with an intact copy")
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise UserError(f"{path} is not a uint8 IDX file")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise UserError(f"{path} is truncated: header says {shape}, found {data.size} values")
    return data.reshape(shape)


def load_mnist(split: str = "train", data_dir: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images as uint8 (N, 28, 28) with 0 = black background, labels as int64 (N,)."""
    if split not in SPLIT_PREFIX:
        raise UserError(f"unknown MNIST split {split!r}; use 'train' or 'test'")
    prefix = SPLIT_PREFIX[split]
    images_name, labels_name = f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"
    images = read_idx(find_file(images_name, data_dir), MD5[images_name])
    labels = read_idx(find_file(labels_name, data_dir), MD5[labels_name])
    # torch.from_numpy shares memory with the cached read-only array: copy once.
    return torch.tensor(images), torch.tensor(labels, dtype=torch.int64)

import gzip
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gan_lightning.config import check_overrides
from gan_lightning.data import ImageDataModule, load_mnist
from gan_lightning.data.datamodule import random_rotation
from gan_lightning.data.datasets import BUNDLED_DIR, MNIST
from gan_lightning.errors import UserError

ROOT = Path(__file__).resolve().parents[1]

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.parametrize("split, counts", [("train", TRAIN_COUNTS), ("test", TEST_COUNTS)])
def test_bundled_mnist_is_the_real_thing(split, counts):
    images, labels = load_mnist(split)
    assert images.dtype == torch.uint8 and images.shape == (sum(counts), 28, 28)
    assert labels.dtype == torch.int64
    assert labels.bincount().tolist() == counts
    # MNIST digits are white on a black background
    assert images[:, 0, 0].max() == 0 and images.max() == 255


def _copy_bundled(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in MNIST.md5:
        shutil.copy(BUNDLED_DIR / f"{name}.gz", raw / f"{name}.gz")
    return raw


def test_torchvision_style_folder_uncompressed_too(tmp_path):
    raw = _copy_bundled(tmp_path)
    name = "t10k-labels-idx1-ubyte"
    (raw / name).write_bytes(gzip.decompress((raw / f"{name}.gz").read_bytes()))
    (raw / f"{name}.gz").unlink()
    _, labels = load_mnist("test", tmp_path)
    assert labels.bincount().tolist() == TEST_COUNTS


def test_corrupt_file_is_named(tmp_path):
    raw = _copy_bundled(tmp_path)
    path = raw / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(gzip.decompress(path.read_bytes()))
    data[100] = (data[100] + 1) % 10  # one wrong label
    path.write_bytes(gzip.compress(bytes(data)))
    with pytest.raises(UserError, match="t10k-labels-idx1-ubyte.*corrupt"):
        load_mnist("test", tmp_path)


def test_truncated_gzip_is_named(tmp_path):
    raw = _copy_bundled(tmp_path)
    path = raw / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(UserError, match="t10k-images-idx3-ubyte"):
        load_mnist("test", tmp_path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(UserError, match="train-images-idx3-ubyte not found"):
        load_mnist("train", tmp_path)


def test_download_true_uses_the_files_already_in_data_dir(tmp_path):
    """The four files lie flat in data_dir, where the loader finds them but torchvision's downloader does not
    look: download=true must not fetch anything. `MNIST` is a file, so that a download would fail at once
    (torchvision makes data_dir/MNIST/raw first) instead of reaching the network."""
    for name in MNIST.md5:
        shutil.copy(BUNDLED_DIR / f"{name}.gz", tmp_path / f"{name}.gz")
    (tmp_path / "MNIST").write_text("not a folder")
    before = sorted(p.name for p in tmp_path.iterdir())
    dm = ImageDataModule(data_dir=str(tmp_path), download=True, val_size=1000)
    dm.prepare_data()  # what Lightning calls first in a run
    assert dm.image_shape == (1, 28, 28) and dm.num_classes == 10
    assert len(dm.train_set) == 59_000
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_download_true_downloads_before_loading_and_says_when_it_cannot(tmp_path):
    """With download=true and no files, the first load goes through the downloader (here into a folder under a
    file, which fails before any network access) and says so in one line, never "add data.download=true"."""
    (tmp_path / "taken").write_text("a file")
    data_dir = tmp_path / "taken" / "mnist"
    dm = ImageDataModule(data_dir=str(data_dir), download=True)
    with pytest.raises(UserError) as error:
        _ = dm.image_shape  # read when the model is built, before Lightning's prepare_data
    message = str(error.value)
    assert message.startswith(f"data.download=true: could not download MNIST into {data_dir} (")
    assert "data.download=true" not in message[len("data.download=true"):] and "\n" not in message
    # the command line says the same, and the run refused leaves no folder
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), f"data.data_dir={data_dir}",
                           "data.download=true", f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 2 and done.stderr.startswith("error: data.download=true: could not download MNIST")
    assert done.stderr.strip().count("\n") == 0 and not (tmp_path / "run").exists()


def test_datamodule_batches_are_scaled_and_split():
    dm = ImageDataModule(batch_size=64, val_size=5000)
    assert dm.image_shape == (1, 28, 28) and dm.num_classes == 10
    assert len(dm.train_set) == 55000 and len(dm.val_set) == 5000
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (64, 28, 28) and images.dtype == torch.uint8  # uint8 until on the device
    images, labels = dm.on_after_batch_transfer((images, labels), 0)
    assert images.shape == (64, 1, 28, 28) and images.dtype == torch.float32
    assert images.min() == -1 and images.max() == 1
    assert len(dm.train_dataloader()) == 55000 // 64  # the last, short batch is dropped


def test_validation_split_is_disjoint_and_fixed_by_seed():
    a, b = ImageDataModule(val_size=1000, split_seed=1), ImageDataModule(val_size=1000, split_seed=1)
    a.setup(), b.setup()
    assert torch.equal(a.val_set.images, b.val_set.images)
    train_keys = {hash(x.numpy().tobytes()) for x in a.train_set.images[:20000]}
    assert not any(hash(x.numpy().tobytes()) in train_keys for x in a.val_set.images[:200] if x.any())


def test_random_rotation_keeps_range_and_background():
    images, _ = load_mnist("test")
    x = images[:16].unsqueeze(1).float() / 127.5 - 1
    rotated = random_rotation(x, 30.0)
    assert rotated.shape == x.shape
    assert not torch.allclose(rotated, x)
    assert rotated.min() >= -1 - 1e-5 and rotated.max() <= 1 + 1e-5
    assert torch.allclose(rotated[:, :, 0, 0], torch.full((16, 1), -1.0), atol=1e-5)  # corners stay black


@pytest.mark.parametrize("overrides, message", [
    (["data.batch_size=0"], "data.batch_size must be a positive integer, got 0"),
    (["data.val_size=-1"], "data.val_size must be an integer >= 0, or null, got -1"),
    (["data.rotation=400"], "data.rotation must be a number from 0 to 180 (degrees), got 400"),
    (["data.download=true"], "data.download=true needs data.data_dir"),
    (["data.dataset=kmnist"], "data.dataset='kmnist' is not one of: mnist, fashion_mnist"),
    (["data=fashion_mnist", "data.download=true"], "the folder to download Fashion-MNIST into"),
    (["data.on_device=true", "data.num_workers=2"], "data.on_device=true cuts batches in the training process"),
    (["data.split_seed=-1"], "data.split_seed must be an integer from 0 to 4294967295, got -1"),
])
def test_the_config_refuses_bad_data_values(overrides, message):
    """Checked once, where the values enter; the data module itself only asserts."""
    with pytest.raises(UserError, match=re.escape(message)):
        check_overrides(overrides)

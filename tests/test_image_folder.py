"""Your own images: `data=image_folder data.data_dir=DIR`, one sub-folder per class. The folders here are real
MNIST test digits written as image files (PNG, and RGB JPEGs of another size), as a user's folder would hold."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gan_lightning.config import check_overrides
from gan_lightning.data import ImageDataModule, load_mnist
from gan_lightning.data.datasets import ImageFolder, make_dataset
from gan_lightning.errors import UserError
from tests.conftest import FAST, ROOT

CLASSES = {"zero": 0, "one": 1, "seven": 7}


def write_folder(root: Path, per_class: int = 100) -> Path:
    """`per_class` real digits of each of three classes as files; every third an RGB JPEG of 40x40."""
    images, labels = load_mnist("test")
    for name, digit in CLASSES.items():
        (root / name).mkdir(parents=True)
        for k, i in enumerate((labels == digit).nonzero().flatten()[:per_class].tolist()):
            image = Image.fromarray(images[i].numpy())
            if k % 3 == 0:
                image.convert("RGB").resize((40, 40)).save(root / name / f"{k}.jpg", quality=95)
            else:
                image.save(root / name / f"{k}.png")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_folder(tmp_path_factory.mktemp("digits"))


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=600, check=False,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})


def test_a_folder_is_read_as_a_dataset_of_its_classes(folder):
    dataset = make_dataset("image_folder", folder)
    assert dataset.class_names == ("one", "seven", "zero")  # the sub-folders, sorted, as torchvision's ImageFolder
    assert dataset.num_classes == 3 and dataset.train_size == 270 and dataset.held_out_images == 30
    train, _ = dataset.load("train")
    test, test_labels = dataset.load("test")
    assert train.shape == (270, 28, 28) and test.shape == (30, 28, 28) and train.dtype == torch.uint8
    assert set(test_labels.tolist()) == {0, 1, 2}  # a seeded order: every class in every split
    # a PNG comes back as the digit it was; a 40x40 RGB JPEG as one channel at 28x28, close to it
    images, labels = load_mnist("test")
    sevens = images[labels == 7].int()
    files = {Path(path).relative_to(folder).as_posix(): i for i, (path, _) in enumerate(dataset.files)}
    everything = torch.cat([train, test]).int()  # in the order of `files`
    assert torch.equal(everything[files["seven/1.png"]], sevens[1])
    assert (everything[files["seven/0.jpg"]] - sevens[0]).abs().float().mean() < 20
    assert make_dataset("image_folder", folder, image_size=32).load("test")[0].shape == (30, 32, 32)


def test_the_validation_split_scales_with_the_folder(folder):
    dm = ImageDataModule("image_folder", data_dir=str(folder), val_size=None, batch_size=16)
    assert dm.image_shape == (1, 28, 28) and dm.num_classes == 3
    assert len(dm.val_set) == 27 and len(dm.train_set) == 243  # a tenth of the 270 training images


def test_bad_folders_are_named_in_one_line(folder, tmp_path):
    with pytest.raises(UserError, match=f"data.data_dir={tmp_path / 'nowhere'}: no such folder"):
        make_dataset("image_folder", tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="Couldn't find any class folder") as error:
        make_dataset("image_folder", tmp_path / "empty")
    assert "sub-folder named after the class" in str(error.value) and "\n" not in str(error.value)
    (tmp_path / "few" / "a").mkdir(parents=True)
    (tmp_path / "few" / "b").mkdir()
    Image.new("L", (28, 28)).save(tmp_path / "few" / "a" / "0.png")
    with pytest.raises(UserError, match="Found no valid file for the classes b"):
        make_dataset("image_folder", tmp_path / "few")
    Image.new("L", (28, 28)).save(tmp_path / "few" / "b" / "0.png")
    with pytest.raises(UserError, match="holds 2 images; a GAN needs at least 20"):
        make_dataset("image_folder", tmp_path / "few")
    broken = write_folder(tmp_path / "broken", per_class=10)
    (broken / "one" / "3.png").write_bytes(b"not a picture")
    with pytest.raises(UserError, match=f"cannot read image {broken / 'one' / '3.png'} .*; remove or replace it"):
        make_dataset("image_folder", broken).load("train")


@pytest.mark.parametrize("overrides, message", [
    (["data=image_folder"], "data=image_folder needs data.data_dir: the folder of your images"),
    (["data=image_folder", "data.data_dir=x", "data.image_size=30"], "data.image_size=30: the networks halve"),
    (["data.image_size=32"], None),  # MNIST's are 28x28: said when the data module is made (below)
    (["data.classifier=no/such.pt"], "data.classifier=no/such.pt: no such file"),
])
def test_the_config_checks_the_folder_keys(overrides, message):
    if message is None:
        with pytest.raises(UserError, match="data.image_size=32: MNIST's images are 28x28"):
            make_dataset("mnist", image_size=32)
        return
    with pytest.raises(UserError, match=message):
        check_overrides(overrides)


def test_a_folder_trains_without_metrics_until_its_classifier_exists_then_with_them(folder, tmp_path):
    """The whole path of the issue: train on the folder (quality metrics off, said in one line), train its feature
    network with train_classifier.py, train again judged by it, then evaluate and generate by class name."""
    data = ["data=image_folder", f"data.data_dir={folder}"]
    first = tmp_path / "first"
    done = run(str(ROOT / "scripts" / "train.py"), "model=cgan", *data, *FAST, f"hydra.run.dir={first}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    said = [line for line in (first / "train.log").read_text().splitlines() if "quality metrics off" in line]
    assert len(said) == 1 and "python scripts/train_classifier.py data=image_folder" in said[0]
    final = json.loads((first / "metrics.json").read_text())["final"]
    assert "val/d_real" in final and not any(key in final for key in ("val/fid", "val/real_fid", "val/precision"))
    checkpoint = torch.load(first / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["dataset"] == "image_folder" and checkpoint["class_names"] == ["one", "seven", "zero"]
    package = tmp_path / "package"  # a bundled model is scored on a published dataset: a folder's run is exported
    done = run(str(ROOT / "scripts" / "package_pretrained.py"), "--run", str(first), "--name", "folder_cgan",
               "--commit", "0000000", "--machine", "this one", "--out", str(package), cwd=tmp_path)
    assert done.returncode == 2 and "learnt your own images" in done.stderr and "export_generator.py" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not package.exists()

    classifier = tmp_path / "classifier" / "digits.pt"
    done = run(str(ROOT / "scripts" / "train_classifier.py"), *data, "--epochs", "2", "--out", str(classifier),
               "--threads", "1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(classifier.with_suffix(".json").read_text())
    assert record["dataset"] == "image_folder" and record["class_names"] == ["one", "seven", "zero"]

    second = tmp_path / "second"
    done = run(str(ROOT / "scripts" / "train.py"), "model=cgan", *data, f"data.classifier={classifier}", *FAST,
               f"hydra.run.dir={second}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    final = json.loads((second / "metrics.json").read_text())["final"]
    assert "val/fid" in final and "val/label_accuracy" in final and "val/real_fid" in final

    ckpt = second / "checkpoints" / "last.ckpt"
    done = run(str(ROOT / "scripts" / "evaluate.py"), f"ckpt_path={ckpt}", "n=20", f"out={tmp_path / 'e.json'}",
               cwd=tmp_path)
    assert done.returncode == 2 and "give its folder with data_dir=DIR" in done.stderr
    done = run(str(ROOT / "scripts" / "evaluate.py"), f"ckpt_path={ckpt}", "n=20", f"data_dir={folder}",
               f"classifier={classifier}", f"out={tmp_path / 'e.json'}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "class shares, model: one:" in done.stdout
    done = run(str(ROOT / "scripts" / "generate.py"), f"ckpt_path={ckpt}", "label=seven", "n=6",
               f"out={tmp_path / 'sevens'}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (np.load(tmp_path / "sevens" / "samples.npz")["labels"] == 1).all()  # "seven" is class 1 of the folder


def test_a_model_record_without_its_folder_keeps_its_classes(folder):
    from gan_lightning.sampling.sampler import generator_dataset

    record = generator_dataset({"dataset": "image_folder", "class_names": ["a", "b"], "num_classes": 2,
                                "image_shape": (1, 32, 32)})
    assert isinstance(record, ImageFolder) and record.class_names == ("a", "b") and record.image_size == 32
    with pytest.raises(UserError, match="give its folder with data_dir=DIR"):
        record.load("test")
    with pytest.raises(UserError, match="has the classes one, seven, zero, not those the model learnt"):
        record.at(folder)

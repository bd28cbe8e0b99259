"""Training a dataset's bundled classifier: a plain, seeded PyTorch loop over in-memory tensors.

It trains on train[:held_out_start] (`ImageDataset`: a published dataset or an image folder), watches accuracy on the held-out rest of the train split, and reports test
accuracy once at the end (the test set never steers training). Output: a state dict and a JSON record beside it.
"""

import argparse
import datetime
import io
import math
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from gan_lightning.data.datasets import DATASETS, IMAGE_FOLDER, MNIST, ImageDataset, make_dataset
from gan_lightning.data.scaling import to_model_range
from gan_lightning.errors import UserError, fail
from gan_lightning.files import Staging, json_text
from gan_lightning.metrics.classifier import ImageClassifier, record_path, sha256_of


def random_affine(
    x: Tensor,
    generator: torch.Generator,
    max_rotation_deg: float = 10.0,
    max_scale_change: float = 0.1,
    max_shift_px: float = 2.0,
) -> Tensor:
    """A random rotation, zoom and shift per image of a batch in [-1, 1]; uncovered pixels become background."""
    batch, _, height, width = x.shape

    def uniform(*shape: int) -> Tensor:
        return torch.rand(*shape, generator=generator) * 2 - 1  # in [-1, 1)

    angle = uniform(batch) * math.radians(max_rotation_deg)  # (B,)
    scale = 1 + uniform(batch) * max_scale_change  # (B,)
    shift = uniform(batch, 2) * (2 * max_shift_px / torch.tensor([width, height]))  # (B, 2), normalized coords
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (B, H, W, 2)
    # Sample in [0, 1] so that zero padding is black background, then map back.
    warped = F.grid_sample((x + 1) / 2, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return warped * 2 - 1


@torch.no_grad()
def accuracy(model: ImageClassifier, images: Tensor, labels: Tensor, batch_size: int = 256) -> float:
    """Top-1 accuracy of `model` on float images in [-1, 1] (N, 1, 28, 28)."""
    was_training = model.training
    model.eval()
    correct = sum(
        (model(x).argmax(1) == y).sum().item() for x, y in zip(images.split(batch_size), labels.split(batch_size))
    )
    model.train(was_training)
    return correct / len(labels)


def fit_classifier(
    images: Tensor,
    labels: Tensor,
    epochs: int,
    seed: int = 0,
    batch_size: int = 128,
    max_lr: float = 3e-3,
    weight_decay: float = 1e-4,
    after_epoch=None,
    num_classes: int = 10,
    image_size: int = 28,
) -> ImageClassifier:
    """A fresh `ImageClassifier` trained on images (N, 1, 28, 28) in [-1, 1] with their labels (N,): AdamW with a
    one-cycle learning rate, a random affine augmentation per image, seeded (weights, order, augmentation).
    `after_epoch(model, epoch, mean_loss)` is called after each epoch. The recipe of the bundled classifier, and of
    the Classification Accuracy Score's classifiers (cas.py)."""
    assert epochs >= 1 and len(images) == len(labels) > 0
    torch.manual_seed(seed)  # weight init and dropout
    generator = torch.Generator().manual_seed(seed)  # data order and augmentation
    model = ImageClassifier(num_classes=num_classes, image_size=image_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=max_lr, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(len(labels) / batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=epochs * steps_per_epoch)
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(labels), generator=generator)
        total_loss = 0.0
        for batch in order.split(batch_size):
            x = random_affine(images[batch], generator)
            loss = F.cross_entropy(model(x), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += loss.item() * len(batch)
        if after_epoch is not None:
            after_epoch(model, epoch, total_loss / len(labels))
    return model.eval()


def train_classifier(
    epochs: int = 12,
    seed: int = 0,
    out_path: str | Path | None = None,
    dataset: ImageDataset = MNIST,
    data_dir: str | Path | None = None,
    batch_size: int = 128,
    max_lr: float = 3e-3,
    weight_decay: float = 1e-4,
    train_size: int | None = None,
    num_threads: int | None = None,
    command: str = "",
    log=print,
) -> dict:
    """Train, save the state dict to `out_path` and its record to the .json beside it; returns the record.

    `out_path` None: the dataset's bundled network; `data_dir`: where the dataset's files are (None: its default);
    `train_size` keeps only the first that many training images (for quick runs); `command` is stored in the record.
    """
    dataset = dataset.at(data_dir)
    held_out_start = dataset.held_out_start
    if epochs < 1:
        raise UserError(f"epochs must be at least 1, got {epochs}")
    if train_size is not None and not 1 <= train_size <= held_out_start:
        raise UserError(f"train_size must be between 1 and {held_out_start}, got {train_size}")
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    if out_path is None:
        assert isinstance(dataset.classifier_path, Path), "an image folder's network has no place in the package"
        out_path = dataset.classifier_path
    out_path = Path(out_path)
    started = time.perf_counter()

    images, labels = dataset.load("train")
    train_end = held_out_start if train_size is None else train_size
    train_x, train_y = to_model_range(images[:train_end]), labels[:train_end]  # (N, 1, 28, 28), (N,)
    held_x, held_y = to_model_range(images[held_out_start:]), labels[held_out_start:]
    test_images, test_labels = dataset.load("test")
    test_x = to_model_range(test_images)

    def watch(model: ImageClassifier, epoch: int, mean_loss: float) -> None:
        nonlocal held_accuracy
        held_accuracy = accuracy(model, held_x, held_y)
        log(f"epoch {epoch}/{epochs}: loss {mean_loss:.4f}, held-out accuracy {held_accuracy:.4f} "
            f"({time.perf_counter() - started:.0f} s)")

    held_accuracy = math.nan
    model = fit_classifier(train_x, train_y, epochs, seed, batch_size, max_lr, weight_decay, after_epoch=watch,
                           num_classes=dataset.num_classes, image_size=dataset.image_size)

    test_accuracy = accuracy(model, test_x, test_labels)
    log(f"test accuracy {test_accuracy:.4f}")
    weights = io.BytesIO()
    torch.save(model.state_dict(), weights)
    record = {
        "file": out_path.name,
        "sha256": sha256_of(weights.getvalue()),
        "test_accuracy": test_accuracy,
        "held_out_accuracy": held_accuracy,
        "dataset": dataset.name,
        "num_classes": dataset.num_classes,
        "class_names": list(dataset.class_names),
        "image_size": dataset.image_size,
        "trained_on": f"{dataset.title} train[:{train_end}]",
        "held_out": f"{dataset.title} train[{held_out_start}:]",
        "seed": seed,
        "epochs": epochs,
        "batch_size": batch_size,
        "max_lr": max_lr,
        "weight_decay": weight_decay,
        "num_threads": torch.get_num_threads(),
        "train_seconds": round(time.perf_counter() - started, 1),
        "command": command,
        "torch_version": torch.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    with Staging("out") as staging:  # the weights and their record together
        staging.file(out_path, keep_suffix=False).write_bytes(weights.getvalue())
        staging.file(record_path(out_path)).write_text(json_text(record, record_path(out_path)))
    log(f"wrote {out_path} and {record_path(out_path).name}")
    return record


def main(argv: Sequence[str] | None = None) -> None:
    """`python scripts/train_classifier.py [data=mnist|fashion_mnist|image_folder] [data.data_dir=DIR]
    [data.image_size=28] [--epochs 12] [--seed 0] [--out PATH]`: writes outputs/classifier/<dataset>_classifier.pt and
    the .json record beside it: on the same machine type, the same file as the shipped
    gan_lightning/metrics/weights/<dataset>_classifier.pt (compare the records' sha256). To replace the shipped
    network, pass that path as --out; an image folder's network is given to training as data.classifier=PATH."""
    parser = argparse.ArgumentParser(description=main.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    keys = ("data", "data.data_dir", "data.image_size")
    parser.add_argument("overrides", nargs="*", metavar="data=NAME data.data_dir=DIR",
                        help=f"the dataset ({', '.join([*DATASETS, IMAGE_FOLDER])}; default mnist), the folder of its "
                             "files and, for an image folder, the size its images are resized to")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="weights file (default outputs/classifier/<dataset>_classifier.pt);"
                        " the .json record goes beside it")
    parser.add_argument("--train-size", type=int, default=None, help="use only the first N training images")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads for torch")
    args = parser.parse_args(argv)
    command = shlex.join(["python", "scripts/train_classifier.py", *(sys.argv[1:] if argv is None else argv)])
    given = dict(item.partition("=")[::2] for item in args.overrides)
    unknown = [item for item in args.overrides if "=" not in item or item.partition("=")[0] not in keys]
    try:
        if unknown:
            raise UserError(f"unknown argument {unknown[0]!r}; give {', '.join(f'{key}=...' for key in keys)}, or "
                            "see --help")
        name, size = given.get("data", "mnist"), given.get("data.image_size")
        if name not in (*DATASETS, IMAGE_FOLDER):
            raise UserError(f"unknown dataset data={name}; use data={' or data='.join([*DATASETS, IMAGE_FOLDER])}")
        if size is not None and (not size.isdigit() or not 8 <= int(size) <= 128 or int(size) % 4):
            raise UserError(f"data.image_size must be a multiple of 4 from 8 to 128, got {size!r}")
        dataset = make_dataset(name, given.get("data.data_dir") or None, None if size is None else int(size))
        out = args.out if args.out is not None else f"outputs/classifier/{dataset.name}_classifier.pt"
        train_classifier(epochs=args.epochs, seed=args.seed, out_path=out, dataset=dataset,
                         train_size=args.train_size, num_threads=args.threads, command=command)
    except UserError as e:
        fail(e)

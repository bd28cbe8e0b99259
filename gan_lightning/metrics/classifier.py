"""The bundled classifiers, one per dataset: feature network for FID/KID and judge for the class metrics.

A dataset's network (`IDXDataset.classifier_path`) ships in `weights/`, beside a JSON record of how they were made; loading checks the file's SHA-256
against that record, so a truncated or swapped file is an error, never silently different numbers.
"""

import contextlib
import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor, nn

from gan_lightning.data.datasets import MNIST
from gan_lightning.errors import UserError

# The classifier of a dataset trains on train[:held_out_start]; train[held_out_start:] stays unseen by it and serves
# as its validation set and as the real-data reference for the quality metrics (`IDXDataset.held_out_start`).
WEIGHTS_PATH = MNIST.classifier_path


def record_path(weights_path: Path) -> Path:
    """The JSON record that lies beside a weights file."""
    return weights_path.with_suffix(".json")


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two 3x3 conv + BatchNorm + ReLU layers, then a 2x2 max-pool that halves the resolution."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class ImageClassifier(nn.Module):
    """Small CNN for 28x28 grey images in [-1, 1]: two conv blocks, a `feature_dim`-wide hidden layer, 10 logits."""

    def __init__(
        self,
        channels: tuple[int, int] = (16, 32),
        feature_dim: int = 128,
        num_classes: int = 10,
        conv_dropout: float = 0.25,
        head_dropout: float = 0.5,
        image_size: int = 28,
    ) -> None:
        super().__init__()
        self.feature_dim = feature_dim
        self.num_classes, self.image_size = num_classes, image_size
        pooled_size = image_size // 4  # two max-pools
        self.body = nn.Sequential(
            conv_block(1, channels[0]),
            conv_block(channels[0], channels[1]),
            nn.Flatten(),
            nn.Dropout(conv_dropout),
            nn.Linear(channels[1] * pooled_size * pooled_size, feature_dim),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Sequential(nn.Dropout(head_dropout), nn.Linear(feature_dim, num_classes))

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)  # (B, feature_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))  # (B, num_classes)


class FrozenClassifier(nn.Module):
    """A trained classifier that never trains, for metrics.

    It stays in eval mode whatever `.train()` a parent calls, computes without gradients, and turns the weights into
    non-persistent buffers: they follow the parent across devices but stay out of its `parameters()` (so out of
    any optimizer) and out of its `state_dict()` (checkpoints don't carry them; they come from the bundled file).
    `forward` returns penultimate features (B, num_features), the form torchmetrics' FID/KID take as `feature=`.
    The classifier passed in is converted in place; don't train it afterwards.
    """

    def __init__(self, classifier: ImageClassifier) -> None:
        super().__init__()
        self.num_features = classifier.feature_dim
        for module in classifier.modules():
            for name, param in list(module.named_parameters(recurse=False)):
                delattr(module, name)
                module.register_buffer(name, param.detach(), persistent=False)
            module._non_persistent_buffers_set.update(module._buffers)
        self.classifier = classifier
        self._shared: dict[int, tuple[Tensor, Tensor]] | None = None
        super().train(False)

    def train(self, mode: bool = True) -> "FrozenClassifier":
        return super().train(False)

    @contextlib.contextmanager
    def sharing_passes(self) -> Iterator[None]:
        """Within the block, calls on the same tensor object share one forward pass, so that FID, KID and the
        digit metrics can all look at a batch for the price of one."""
        self._shared = {}
        try:
            yield
        finally:
            self._shared = None

    @torch.no_grad()
    def _features(self, x: Tensor) -> Tensor:
        weight = self.classifier.head[-1].weight
        # Full precision even under a mixed-precision autocast: the features feed covariance estimates.
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self.classifier.features(x.to(device=weight.device, dtype=weight.dtype))  # (B, num_features)

    def forward(self, x: Tensor) -> Tensor:
        if self._shared is None:
            return self._features(x)
        if id(x) not in self._shared:
            self._shared[id(x)] = (x, self._features(x))  # holding x keeps its id from being reused
        return self._shared[id(x)][1]  # (B, num_features)

    @torch.no_grad()
    def logits(self, x: Tensor) -> Tensor:
        features = self(x)  # (B, num_features)
        with torch.autocast(device_type=features.device.type, enabled=False):
            return self.classifier.head(features)  # (B, num_classes)


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _verified_state_dict(weights_path: Path) -> tuple[dict[str, Tensor], dict]:
    record_file = record_path(weights_path)
    hint = "reinstall the package or retrain with scripts/train_classifier.py"
    try:
        raw = weights_path.read_bytes()
        record = json.loads(record_file.read_text())
        expected = record["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(
            f"cannot read classifier weights {weights_path} or their record {record_file}: {e}; {hint}"
        ) from None
    if sha256_of(raw) != expected:
        raise UserError(f"classifier weights {weights_path} are corrupt (SHA-256 differs from {record_file}); {hint}")
    return torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True), record


def load_classifier(weights_path: str | Path = WEIGHTS_PATH) -> ImageClassifier:
    """The trained classifier in eval mode, on the CPU, after checking the weights' SHA-256 against their record
    (which also says its number of classes and image size; 10 and 28 when it does not)."""
    weights_path = Path(weights_path)
    state_dict, record = _verified_state_dict(weights_path)
    model = ImageClassifier(num_classes=int(record.get("num_classes", 10)), image_size=int(record.get("image_size", 28)))
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as e:
        raise UserError(f"classifier weights {weights_path} don't fit ImageClassifier: {e}") from None
    return model.eval()

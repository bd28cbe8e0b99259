"""Does a generator copy its training set? Each sample's pixel distance to its nearest training image,
against the same distance for real test images, which no model saw.

A real test image (a digit, a garment) is never closer to a training image than its own style allows; the 1st percentile
of the test images' nearest-neighbour distances is the threshold. The memorised share is the share of samples
closer than that threshold to a training image: about 0.01 for real test images by construction, far above
it for a model that reproduces training digits. Distances are Euclidean in pixel space, intensities in [0, 1].
"""

import numpy as np
import torch
from torch import Tensor

from gan_lightning.data.datasets import MNIST, IDXDataset

PERCENTILE = 1.0  # of the real test images' distances: the threshold


def _flat(images: Tensor | np.ndarray) -> Tensor:
    """uint8 images (N, 28, 28) -> float32 (N, 784) in [0, 1]."""
    return torch.as_tensor(images).reshape(len(images), -1).float() / 255


def nearest(queries: Tensor, keys: Tensor, block: int = 2048) -> tuple[Tensor, Tensor]:
    """For each row of `queries` (N, D), the distance to its nearest row of `keys` (M, D) and that row's index."""
    keys_sq = keys.square().sum(1)  # (M,)
    distances, indices = [], []
    for i in range(0, len(queries), block):
        q = queries[i : i + block]
        squared = q.square().sum(1, keepdim=True) + keys_sq - 2 * q @ keys.T  # (b, M)
        value, index = squared.min(1)
        distances.append(value.clamp(min=0).sqrt())
        indices.append(index)
    return torch.cat(distances), torch.cat(indices)


def memorisation(samples: np.ndarray, dataset: IDXDataset = MNIST) -> dict:
    """The memorised share of uint8 samples (N, 28, 28), the real test images' share at the same threshold
    (0.01), and what draws the closest pairs: {memorised_share, test_memorised_share, threshold,
    median_distance, test_median_distance, closest: [(sample index, training index, distance)] x 16}."""
    train, _ = dataset.load("train")
    test, _ = dataset.load("test")
    train_flat = _flat(train)
    test_distances, _ = nearest(_flat(test), train_flat)
    threshold = torch.quantile(test_distances, PERCENTILE / 100).item()
    distances, indices = nearest(_flat(samples), train_flat)
    order = distances.argsort()[:16]
    return {
        "memorised_share": (distances < threshold).double().mean().item(),
        "test_memorised_share": (test_distances < threshold).double().mean().item(),
        "threshold": threshold,
        "median_distance": distances.median().item(),
        "test_median_distance": test_distances.median().item(),
        "closest": [(int(i), int(indices[i]), distances[i].item()) for i in order],
    }

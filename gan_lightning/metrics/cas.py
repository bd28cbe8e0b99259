"""Classification Accuracy Score (Ravuri & Vinyals, "Classification Accuracy Score for Conditional Generative
Models", NeurIPS 2019): train on synthetic, test on real.

A fresh classifier of the bundled architecture and recipe (train_classifier.fit_classifier) learns only from a
conditional generator's labelled images, every class equally often, and is tested on the dataset's real test set.
Beside it, the same training on as many real training images: the gap between the two accuracies is what the
generated images lack as training data (styles never drawn, classes drawn as another).
"""

import time
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from gan_lightning.data.datasets import MNIST, IDXDataset
from gan_lightning.data.scaling import to_model_range
from gan_lightning.metrics.quality import draw
from gan_lightning.metrics.train_classifier import accuracy, fit_classifier

TRAIN_IMAGES = MNIST.train_size  # the most a real baseline can use


def accuracy_on_test_set(images: Tensor, labels: Tensor, epochs: int, seed: int, dataset: IDXDataset = MNIST) -> float:
    """Top-1 accuracy on the dataset's test set of a classifier trained on uint8 images (N, H, W) and labels (N,)."""
    model = fit_classifier(to_model_range(images), labels, epochs, seed, num_classes=dataset.num_classes,
                           image_size=dataset.image_size)
    test_images, test_labels = dataset.load("test")
    return accuracy(model, to_model_range(test_images), test_labels)


def classification_accuracy_score(
    sample: Callable[[int, int], tuple[np.ndarray, np.ndarray]], n: int = TRAIN_IMAGES, epochs: int = 3,
    seed: int = 0, real: bool = True, dataset: IDXDataset = MNIST,
) -> dict:
    """CAS of a conditional generator: `sample(n, seed)` gives n uint8 images (n, 28, 28) with the labels asked for
    (n,). Returns the test accuracy of the classifier trained on them (`cas`) and, with `real`, of one trained the
    same way on n real training images (a seeded draw; `real_accuracy`), with the minutes each took."""
    assert 10 <= n <= dataset.train_size and epochs >= 1
    result = {"n": n, "epochs": epochs, "seed": seed}
    started = time.perf_counter()
    images, labels = sample(n, seed)
    result["cas"] = accuracy_on_test_set(torch.from_numpy(images), torch.from_numpy(labels).long(), epochs, seed,
                                         dataset)
    result["cas_minutes"] = round((time.perf_counter() - started) / 60, 2)
    if real:
        started = time.perf_counter()
        train_images, train_labels = dataset.load("train")
        images, labels = draw(train_images, train_labels, n, seed)
        result["real_accuracy"] = accuracy_on_test_set(images, labels, epochs, seed, dataset)
        result["real_minutes"] = round((time.perf_counter() - started) / 60, 2)
    return result

"""Quality metrics for generated MNIST digits, judged by a bundled, checksummed MNIST classifier."""

from gan_lightning.metrics.classifier import FrozenClassifier, MNISTClassifier, load_classifier
from gan_lightning.metrics.quality import GANQuality, evaluate_images, mnist_score, reference_row

__all__ = [
    "FrozenClassifier",
    "GANQuality",
    "MNISTClassifier",
    "evaluate_images",
    "load_classifier",
    "mnist_score",
    "reference_row",
]

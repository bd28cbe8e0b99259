"""Quality metrics for generated MNIST digits, judged by a bundled, checksummed MNIST classifier."""

from gan_lightning.metrics.classifier import FrozenClassifier, ImageClassifier, load_classifier
from gan_lightning.metrics.quality import GANQuality, classifier_score, evaluate_images, reference_row

__all__ = [
    "FrozenClassifier",
    "GANQuality",
    "ImageClassifier",
    "classifier_score",
    "evaluate_images",
    "load_classifier",
    "reference_row",
]

"""Vanilla, DCGAN and conditional GANs for MNIST digits, trained with PyTorch Lightning and Hydra."""

__version__ = "0.1.0"

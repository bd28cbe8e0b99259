"""Vanilla, DCGAN, conditional and InfoGAN GANs for MNIST digits, trained with PyTorch Lightning and Hydra.

    from gan_lightning import load_generator
    g = load_generator("cgan")            # a bundled model: "vanilla", "dcgan", "cgan" or "infogan"
    x = g.sample(16, digit=7, seed=0)     # uint8 (16, 28, 28), 0 = black background like MNIST
"""

from gan_lightning.errors import UserError  # what every door raises for bad input: one line saying what to do
from gan_lightning.version import __version__


def load_generator(source: str = "cgan", device: str = "cpu"):
    """A trained generator as a `gan_lightning.sampling.Sampler`: `.sample`, `.morph`, `.sweep`, `.walk`,
    `.save_pretrained`. `source` is a bundled model's name, a folder written by `save_pretrained`, a training
    checkpoint (.ckpt) or a generator exported by scripts/export_generator.py. A bare bundled name ("cgan") is the
    bundled model even where the current folder holds a `cgan` (a line on stderr says so); "./cgan" is that folder."""
    from gan_lightning.sampling.sampler import Sampler  # the package's top imports nothing heavy until asked

    return Sampler.load(source, device)


__all__ = ["UserError", "__version__", "load_generator"]

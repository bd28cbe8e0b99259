"""Digits from a trained generator: samples, morphs, digit sweeps, latent walks and training progressions.

    from gan_lightning.sampling import Sampler, write_samples
    sampler = Sampler.load("outputs/train/.../checkpoints/last.ckpt")
    for images, labels in sampler.samples(n=1000, seed=0):  # uint8 (b, 28, 28), int64 (b,) or None
        ...
"""

from gan_lightning.sampling.generate import generate, write_animation, write_samples
from gan_lightning.sampling.latent import noise, slerp
from gan_lightning.sampling.outputs import progress_gif
from gan_lightning.sampling.sampler import Sampler, to_uint8

__all__ = ["Sampler", "generate", "noise", "progress_gif", "slerp", "to_uint8", "write_animation", "write_samples"]

"""Digits from a trained generator: samples, morphs, digit sweeps, latent walks, and the pictures and files they
are written to (`outputs`; `python scripts/generate.py` is the command line, `gan_lightning.generate`).

    from gan_lightning.sampling import Sampler
    sampler = Sampler.load("outputs/train/.../checkpoints/last.ckpt")
    for images, labels in sampler.samples(n=1000, seed=0):  # uint8 (b, 28, 28), int64 (b,) or None
        ...
"""

from gan_lightning.data.scaling import to_uint8
from gan_lightning.sampling.latent import noise, slerp
from gan_lightning.sampling.outputs import progress_gif
from gan_lightning.sampling.sampler import Sampler

__all__ = ["Sampler", "noise", "progress_gif", "slerp", "to_uint8"]

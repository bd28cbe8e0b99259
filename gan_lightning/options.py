"""The names a config may choose from, for the checks of `config.py` and the code that acts on them alike.

They live here, below both, so that checking a config never imports the training logic: the GAN variants, the
losses, the ways to clip gradients and the differentiable augmentations. The code that implements each asserts that
it implements exactly these names.
"""

from collections.abc import Sequence

from gan_lightning.errors import UserError

# the GAN variants, by the registered name a checkpoint or an export records (`model=<name>` in training), in words
VARIANTS = {"vanilla": "Vanilla GAN", "dcgan": "DCGAN", "cgan": "conditional GAN", "infogan": "InfoGAN"}

# the GAN losses (`gan_lightning.models.losses`)
LOSSES = ("bce", "hinge", "wgan-gp")

# how `model.gradient_clip_val` clips: the gradients' total norm, or each value (Lightning's names)
CLIP_ALGORITHMS = ("norm", "value")

# what the training watchman does on an alarm (`callbacks.health.action`, `gan_lightning.callbacks.health`)
HEALTH_ACTIONS = ("warn", "stop")

# DiffAugment's transformations (`gan_lightning.models.augment`), in the reference code's names
AUGMENTATIONS = ("translation", "cutout")


def parse_policy(policy: str | Sequence[str] | None, key: str = "model.augment") -> tuple[str, ...]:
    """The augmentations a policy names, in order: a list of names, or one string of them separated by commas (the
    reference code's `policy`); None or empty is none. An unknown name is a `UserError` naming `key`."""
    if policy is None:
        return ()
    names = policy.split(",") if isinstance(policy, str) else policy
    if not isinstance(names, Sequence) or not all(isinstance(name, str) for name in names):
        raise UserError(f"{key} must be a list of augmentations, e.g. {key}=[translation,cutout], or null; "
                        f"got {policy!r}")
    names = tuple(name.strip() for name in names if name.strip())
    unknown = [name for name in names if name not in AUGMENTATIONS]
    if unknown:
        raise UserError(f"{key}: unknown augmentation {unknown[0]!r}; choose from {', '.join(AUGMENTATIONS)}, "
                        f"e.g. {key}=[translation,cutout], or null for none")
    return names

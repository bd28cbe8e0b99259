"""Differentiable augmentation (DiffAugment; Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN
Training"): the same kind of random transformation applied to real and fake images before every discriminator
call, in the D step and in the G step, so that D never learns "augmented means real" and G's gradients flow back
through the transformation.

Each function takes images (B, C, H, W) in [-1, 1] and draws its own random transformation per image from torch's
global random number generator (on the images' device), whose state the training checkpoints carry, so a resumed
run draws what an uninterrupted one would. Pixels moved in from outside the image and the cut-out squares take the
background value, black (-1, as the data are scaled), as the data's random rotation pads: a shifted digit is a
digit in another place of its frame. The output keeps the input's shape and value range.
"""

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from gan_lightning import options

BACKGROUND = -1.0  # black in [-1, 1]: MNIST's background


def translation(images: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by its own whole number of pixels, up to `ratio` of its height and width in each direction
    (4 pixels for 28x28), filling what comes in with the background."""
    b, _, h, w = images.shape  # (B, C, H, W)
    max_y, max_x = int(h * ratio + 0.5), int(w * ratio + 0.5)
    shift_y = torch.randint(-max_y, max_y + 1, (b, 1, 1), device=images.device)
    shift_x = torch.randint(-max_x, max_x + 1, (b, 1, 1), device=images.device)
    # read pixel (y + shift_y, x + shift_x) of the image padded by one background pixel, which every index that
    # falls outside the image is clamped to
    padded = F.pad(images, (1, 1, 1, 1), value=BACKGROUND)  # (B, C, H + 2, W + 2)
    rows = (torch.arange(h, device=images.device).view(1, h, 1) + shift_y + 1).clamp(0, h + 1)  # (B, H, 1)
    cols = (torch.arange(w, device=images.device).view(1, 1, w) + shift_x + 1).clamp(0, w + 1)  # (B, 1, W)
    batch = torch.arange(b, device=images.device).view(b, 1, 1)
    return padded[batch, :, rows, cols].permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)


def cutout(images: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Set a square of `ratio` of the image's height and width (14x14 for 28x28) to the background, centred on a
    random pixel of each image (so partly outside the image near its edges)."""
    b, _, h, w = images.shape  # (B, C, H, W)
    size_y, size_x = int(h * ratio + 0.5), int(w * ratio + 0.5)
    # the reference code's centres: an even-sized square may reach one pixel further at the far edges
    top = torch.randint(0, h + (1 - size_y % 2), (b, 1, 1), device=images.device) - size_y // 2
    left = torch.randint(0, w + (1 - size_x % 2), (b, 1, 1), device=images.device) - size_x // 2
    rows = torch.arange(h, device=images.device).view(1, h, 1)
    cols = torch.arange(w, device=images.device).view(1, 1, w)
    inside = (rows >= top) & (rows < top + size_y) & (cols >= left) & (cols < left + size_x)  # (B, H, W)
    return images.masked_fill(inside.unsqueeze(1), BACKGROUND)


# the transformations a policy may name, in the DiffAugment reference code's names; its `color` (brightness,
# saturation, contrast) is left out: saturation does nothing to one channel, and brightness leaves [-1, 1]
AUGMENTATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"translation": translation, "cutout": cutout}
assert tuple(AUGMENTATIONS) == options.AUGMENTATIONS, "the names a config may give are those implemented here"


def diff_augment(images: torch.Tensor, policy: Sequence[str]) -> torch.Tensor:
    """`images` (B, C, H, W) through the augmentations of `policy` (names from `options.parse_policy`), in order."""
    for name in policy:
        images = AUGMENTATIONS[name](images)
    return images

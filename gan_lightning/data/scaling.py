"""Between MNIST's pixels and the models' range: uint8 in [0, 255] (0 = black background) and float in [-1, 1]
(the range of a generator ending in Tanh, which every network and metric of the project takes)."""

import numpy as np
import torch


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, H, W) -> float (N, 1, H, W) in [-1, 1], on the images' device."""
    return images.unsqueeze(1).float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Images (N, 1, H, W) in [-1, 1] -> uint8 (N, H, W) in [0, 255] on the CPU, rounded: the inverse of
    `to_model_range`."""
    return ((images[:, 0].float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).cpu().numpy()

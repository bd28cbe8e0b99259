"""FID digit by digit: the worst digit is what a user sees first.

The fakes of a digit are those asked for it (conditional model) or those the classifier reads as it; the reals
are the reference images of that digit. With n = 10,000 samples each digit has about 1,000 on either side, so
a per-digit FID is noisier than the overall one and, like any FID, comparable only at the same n.
"""

import torch
from torch import Tensor


def frechet_distance(a: Tensor, b: Tensor) -> float:
    """The Fréchet distance between Gaussians fitted to two feature sets (N, D) and (M, D): FID's formula,
    |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2)), as torchmetrics computes it."""
    a, b = a.double(), b.double()
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)  # (D, D), unbiased like torchmetrics
    cross = torch.linalg.eigvals(cov_a @ cov_b).sqrt().real.sum()
    return ((mean_a - mean_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * cross).item()


def per_class_fid(real: Tensor, real_classes: Tensor, fake: Tensor, fake_classes: Tensor, num_classes: int) -> list:
    """FID between the reals and the fakes of each class (fakes: the digit asked for, or the classifier's
    reading); NaN for a class with fewer than 2 fakes."""
    result = []
    for c in range(num_classes):
        mine = fake[fake_classes == c]
        result.append(frechet_distance(real[real_classes == c], mine) if len(mine) >= 2 else float("nan"))
    return result

"""How well a generator's latent codes match what they were meant to find without labels (InfoGAN).

- Code-to-digit accuracy: the bundled classifier reads the digit of every sample drawn with each categorical code;
  codes are matched one to one to digits so as to maximise the samples whose digit is their code's
  (`scipy.optimize.linear_sum_assignment` on the confusion matrix), and the accuracy is the share of samples that
  show their code's digit. A code that draws a mix of digits, or two codes that draw the same digit, lower it.
- What a continuous code does: each style (noise and categorical code) is drawn along the code from -1 to 1, the
  other codes held at 0; the Spearman rank correlation of the code's value with the digit's slant (the angle of its
  principal axis of ink) and with its width (the standard deviation of its ink across that axis) is averaged over
  the styles. A code that turns the digit gives a slant correlation near +1 or -1, one that widens it a width one.
"""

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.stats import spearmanr

from gan_lightning.data.datasets import MNIST, IDXDataset
from gan_lightning.data.scaling import to_model_range
from gan_lightning.metrics.classifier import load_classifier


def code_to_digit_accuracy(codes: np.ndarray, digits: np.ndarray, num_codes: int, num_digits: int = 10
                           ) -> tuple[float, list[int]]:
    """The accuracy of the best one-to-one matching of codes (n,) to the digits read (n,), and each code's digit
    (-1 for a code left unmatched: with more codes than digits, the samples of the extra codes count as wrong)."""
    assert codes.shape == digits.shape, (codes.shape, digits.shape)
    confusion = np.zeros((num_codes, num_digits), dtype=np.int64)
    np.add.at(confusion, (codes, digits), 1)
    rows, cols = linear_sum_assignment(confusion, maximize=True)
    code_digits = np.full(num_codes, -1)
    code_digits[rows] = cols
    return float(confusion[rows, cols].sum() / max(len(codes), 1)), [int(d) for d in code_digits]


def ink_moments(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The slant and the width of digits (uint8 (n, H, W), ink bright): the angle of the principal axis of the ink
    from the vertical, in degrees (positive: the top leans right), and the standard deviation of the ink across that
    axis, in pixels."""
    ink = images.astype(np.float64)
    _, h, w = ink.shape
    y, x = np.mgrid[0:h, 0:w]
    mass = ink.sum((1, 2)).clip(min=1e-9)
    cy, cx = (ink * y).sum((1, 2)) / mass, (ink * x).sum((1, 2)) / mass
    dy, dx = y - cy[:, None, None], x - cx[:, None, None]
    myy, mxx, mxy = ((ink * d).sum((1, 2)) / mass for d in (dy * dy, dx * dx, dx * dy))
    # the principal axis of the 2x2 covariance [[mxx, mxy], [mxy, myy]], measured from the vertical (image y points
    # down, so a top leaning right has x falling as y grows: negative covariance)
    angle = np.degrees(0.5 * np.arctan2(-2 * mxy, myy - mxx))
    spread = np.sqrt(((mxx - myy) / 2) ** 2 + mxy**2)
    minor = ((mxx + myy) / 2 - spread).clip(min=0)
    return angle, np.sqrt(minor)


def code_correlations(sweeps: np.ndarray, values: np.ndarray) -> dict[str, float]:
    """The mean over styles of the rank correlation of a code's `values` (m,) with the slant and the width of the
    digits `sweeps` (styles, m, H, W) drawn along it; a style whose measure does not vary counts as 0."""
    angle, width = (m.reshape(sweeps.shape[:2]) for m in ink_moments(sweeps.reshape(-1, *sweeps.shape[2:])))
    result = {}
    for name, measure in (("slant", angle), ("width", width)):
        rhos = [spearmanr(values, row).statistic if np.ptp(row) > 0 else 0.0 for row in measure]
        result[name] = float(np.mean(np.nan_to_num(rhos)))
    return result


@torch.no_grad()
def classifier_digits(images: np.ndarray, batch_size: int = 1000, dataset: IDXDataset = MNIST) -> np.ndarray:
    """The dataset's bundled classifier's reading of uint8 images (n, H, W)."""
    classifier = load_classifier(dataset.classifier_path).eval()
    tensors = to_model_range(torch.from_numpy(images))
    return torch.cat([classifier(batch).argmax(1) for batch in tensors.split(batch_size)]).numpy()

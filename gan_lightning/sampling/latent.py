"""Points and paths in the generator's latent space: seeded noise, slerp, label mixtures, walks.

Everything here is deterministic: the same seed gives the same noise, whatever the batch size.
"""

from collections.abc import Iterator

import torch

# Noise is drawn in blocks of this many rows, so that sample i of a seed never depends on the batch size.
NOISE_BLOCK = 256


def noise_stream(seed: int, noise_dim: int, n: int, batch_size: int) -> Iterator[torch.Tensor]:
    """The noise of samples 0..n-1 for `seed`, as consecutive batches of at most `batch_size` rows (noise_dim,)."""
    rng = torch.Generator().manual_seed(seed)
    buffer = torch.empty(0, noise_dim)
    done = 0
    while done < n:
        size = min(batch_size, n - done)
        while len(buffer) < size:
            buffer = torch.cat([buffer, torch.randn(NOISE_BLOCK, noise_dim, generator=rng)])
        batch, buffer = buffer[:size], buffer[size:]
        done += size
        yield batch


def uniform_stream(seed: int, width: int, n: int, batch_size: int) -> Iterator[torch.Tensor]:
    """Draws from Uniform(-1, 1) (rows of `width`) for samples 0..n-1 of `seed`, in batches like `noise_stream`, from
    a stream apart from the noise's (the seed's second stream), so the noise of a seed never depends on them. A
    normal draw x becomes erf(x / sqrt(2)), which is uniform on (-1, 1)."""
    for batch in noise_stream(seed + 2**32, width, n, batch_size):
        yield torch.erf(batch / 2**0.5)


def noise(seed: int, noise_dim: int, n: int = 1) -> torch.Tensor:
    """The first `n` noise vectors (n, noise_dim) of `seed`: `noise(s, d)[0]` is the z of sample 0 of seed s."""
    return next(noise_stream(seed, noise_dim, n, n))


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation from a (D,) to b (D,) at fractions t (F,) -> (F, D).

    Gaussian noise lives near a sphere; a straight line between two points cuts through its inside, where
    the generator saw no noise during training. The arc follows the angle between the two directions
    (White, "Sampling Generative Networks", 2016); it falls back to a straight line for parallel vectors.
    """
    if torch.equal(a, b):
        return a.expand(len(t), -1).clone()
    t = t[:, None]
    cos = torch.dot(a / a.norm(), b / b.norm()).clamp(-1.0, 1.0)
    omega = torch.arccos(cos)
    if torch.sin(omega).abs() < 1e-6:
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Straight-line interpolation from a (D,) to b (D,) at fractions t (F,) -> (F, D)."""
    t = t[:, None]
    return (1 - t) * a + t * b


def label_vector(digit: int, num_classes: int) -> torch.Tensor:
    """The one-hot label (num_classes,) of a digit, as the float vector a morph interpolates."""
    vector = torch.zeros(num_classes)
    vector[digit] = 1.0
    return vector


def axis(index: int, noise_dim: int) -> torch.Tensor:
    """The unit direction (noise_dim,) along coordinate `index` of the noise."""
    return label_vector(index, noise_dim)


def walk(z: torch.Tensor, direction: torch.Tensor, span: float, frames: int) -> torch.Tensor:
    """Points (frames, D) from z - span * direction to z + span * direction, z itself in the middle."""
    steps = torch.linspace(-span, span, frames)
    return z + steps[:, None] * direction / direction.norm()

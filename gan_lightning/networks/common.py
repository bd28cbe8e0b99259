import torch
import torch.nn.functional as F
from torch import nn


def one_hot(labels: torch.Tensor, num_classes: int, like: torch.Tensor) -> torch.Tensor:
    """Digit indices (B,) -> one-hot rows (B, num_classes); float label vectors (B, num_classes), one-hot or a
    mixture (a morph between digits), pass through. Both in the dtype and device of `like`."""
    if labels.is_floating_point():
        if labels.shape[-1] != num_classes:
            raise ValueError(f"label vectors must have {num_classes} entries, got shape {tuple(labels.shape)}")
        return labels.to(like)
    return F.one_hot(labels, num_classes).to(like)


def dcgan_init(module: nn.Module) -> None:
    """The DCGAN paper's initialisation: conv weights ~ N(0, 0.02), BatchNorm weights ~ N(1, 0.02), biases 0. Not
    on the meta device, where a network is built only to count its parameters (and the first draw there costs
    seconds)."""
    if any(p.is_meta for p in module.parameters(recurse=False)):
        return
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def check_dims(noise_dim: int | None = None, num_classes: int = 0) -> None:
    if noise_dim is not None and noise_dim <= 0:
        raise ValueError(f"noise_dim must be positive, got {noise_dim}")
    if num_classes < 0:
        raise ValueError(f"num_classes must be >= 0, got {num_classes}")


CONDITIONINGS = ("concat", "projection")


def check_conditioning(conditioning: str) -> None:
    if conditioning not in CONDITIONINGS:
        raise ValueError(f"discriminator conditioning must be one of {', '.join(CONDITIONINGS)}, got {conditioning!r}")


def apply_spectral_norm(module: nn.Module) -> None:
    """Spectral normalisation (Miyato et al., 2018) on every conv and linear weight of `module`: each layer's
    weight is divided by its largest singular value (one power iteration per training forward), so D is
    1-Lipschitz per layer. Uses torch's parametrization, whose state (`weight.original`, `_u`, `_v`) is plain
    tensors in the state dict."""
    for layer in list(module.modules()):
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.utils.parametrizations.spectral_norm(layer)


class Projection(nn.Module):
    """The projection discriminator's label term (Miyato & Koyama, 2018): <embed(y), h> for features h (B, D),
    added to the unconditional logit. The embedding is a bias-free linear map of the one-hot label, so mixed
    label vectors (morphs) project too."""

    def __init__(self, num_classes: int, features: int):
        super().__init__()
        self.num_classes = num_classes
        self.embed = nn.Linear(num_classes, features, bias=False)
        nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def forward(self, h: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return (self.embed(one_hot(labels, self.num_classes, h)) * h).sum(dim=1)  # (B,)


class MinibatchStd(nn.Module):
    """The minibatch standard deviation layer (Karras et al., 2018, "Progressive Growing of GANs"): the standard
    deviation of every feature over a group of `group_size` images, averaged into one number per group and
    appended to each image's features (one more feature, or one more constant channel map). D can then tell a
    batch of too-similar fakes from a batch of real digits, which pushes G away from collapsing onto a few modes.

    Image i of a batch of B belongs to group i % (B / group), as in StyleGAN's code; a batch that `group_size`
    does not divide uses its largest divisor below it (the whole batch when that is 1).
    """

    def __init__(self, group_size: int = 4):
        super().__init__()
        if group_size < 2:
            raise ValueError(f"minibatch_std group size must be at least 2 (0 switches it off), got {group_size}")
        self.group_size = group_size

    def _group(self, batch: int) -> int:
        group = next(g for g in range(min(self.group_size, batch), 0, -1) if batch % g == 0)
        return batch if group == 1 else group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        group = self._group(b)
        # (G, M, F): image i in group i % M, its F features in a row (a copy for a channels-last map, where
        # a strided reduction over G would be several times slower)
        y = x.reshape(group, b // group, -1)
        deviation = y - y.mean(dim=0)
        std = (deviation.square().mean(dim=0) + 1e-8).sqrt()  # (M, F)
        std = std.mean(dim=1).repeat(group)  # (B,): each image gets its group's average
        if x.dim() == 2:
            return torch.cat([x, std[:, None]], dim=1)  # (B, F + 1)
        out = torch.cat([x, std.view(b, 1, 1, 1).expand(b, 1, *x.shape[2:])], dim=1)  # (B, C + 1, H, W)
        # cat gives a contiguous (NCHW) map; a channels-last input keeps its layout for the convolution after it
        return out.contiguous(memory_format=torch.channels_last) if x.is_contiguous(
            memory_format=torch.channels_last) else out

"""The exponential moving average of the generator's weights (as StyleGAN2-ADA and BigGAN keep one): never trained,
only blended towards G after each G step; it samples, is evaluated and is exported."""

import torch
from torch import nn


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, updates: torch.Tensor, max_decay: float) -> None:
    """w_ema <- d * w_ema + (1 - d) * w with d = min(max_decay, (1 + n) / (10 + n)) after n = `updates` updates, so
    the average forgets the random initial weights early; buffers (BatchNorm statistics) are copied. The decay is
    computed on the device (`updates` is a 0-dim tensor there), so the update never waits for a GPU."""
    n = updates.float()
    decay = ((1 + n) / (10 + n)).clamp(max=max_decay)  # a 0-dim tensor on the device
    # w_ema + (1 - d) * (w - w_ema) in one pass over the weights, without a temporary copy of them
    torch._foreach_lerp_(list(ema.parameters()), [p.detach() for p in model.parameters()], 1.0 - decay)
    for ema_buffer, buffer in zip(ema.buffers(), model.buffers()):
        ema_buffer.copy_(buffer)
    updates += 1

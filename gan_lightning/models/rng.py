"""The training noise streams, so that a resumed run draws exactly what the uninterrupted one would have.

Training draws its noise (and the rotation and DiffAugment draws) from torch's global generators. Their state
goes into every checkpoint and comes back on resume. Under DDP every rank starts from the same seed, so each rank
gets its own stream derived from the common one, and each rank's state is saved (gathered into rank 0's
checkpoint) and restored to that rank.
"""

from typing import Any

import lightning as L
import torch


def split_per_rank(module: L.LightningModule) -> None:
    """At the start of training under DDP: a stream of its own for each rank, derived deterministically from the
    common seed (unless `restore` gave each rank its saved one)."""
    if module.trainer.world_size > 1 and not getattr(module, "_restored_rank_rng", False):
        offset = int(torch.randint(2**31, ()).item())
        torch.manual_seed(offset + module.global_rank)


def state(module: L.LightningModule) -> dict[str, Any]:
    """The generators' states for a checkpoint (called on every rank; under DDP each rank's, gathered)."""
    saved: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        saved["cuda"] = torch.cuda.get_rng_state_all()
    if module._trainer is not None and module.trainer.world_size > 1:
        saved["torch_per_rank"] = module.all_gather(torch.get_rng_state().to(module.device)).cpu()
        if module.device.type == "cuda":
            cuda_state = torch.cuda.get_rng_state(module.device).to(module.device)
            saved["cuda_per_rank"] = module.all_gather(cuda_state).cpu()
    return saved


def restore(module: L.LightningModule, saved: dict[str, Any]) -> None:
    """Set the generators to a checkpoint's states (before training resumes): under DDP this rank's own, when the
    checkpoint has one per rank for as many ranks."""
    world = module.trainer.world_size if module._trainer is not None else 1
    per_rank = saved.get("torch_per_rank")
    if world > 1 and per_rank is not None and len(per_rank) == world:
        # a row of the gathered states is a view into them: the RNG setters read a tensor's storage from its start,
        # so each row is copied out first
        torch.set_rng_state(per_rank[module.global_rank].clone().cpu())
        module._restored_rank_rng = True  # split_per_rank keeps it rather than re-seeding
        # Lightning calls the loading hook before it moves the module to its device: the device is the strategy's
        cuda_per_rank = saved.get("cuda_per_rank")
        device = module.trainer.strategy.root_device
        if cuda_per_rank is not None and len(cuda_per_rank) == world and device.type == "cuda":
            torch.cuda.set_rng_state(cuda_per_rank[module.global_rank].clone().cpu(), device)
        return
    if "torch" in saved:
        torch.set_rng_state(saved["torch"].cpu())
    if "cuda" in saved and torch.cuda.is_available() and len(saved["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in saved["cuda"]])

"""A variant is a subclass of the shared base: written here, in a test file, it trains through the real config."""

from typing import ClassVar

import torch
from hydra.utils import instantiate

from gan_lightning import load_generator
from gan_lightning.checkpoint import load_checkpoint
from gan_lightning.config import compose_config
from gan_lightning.models import GAN, VanillaGAN
from gan_lightning.train import train
from tests.conftest import compose_run


class LeastSquaresGAN(VanillaGAN):
    """LSGAN (Mao et al., 2017): least-squares losses, D pulls reals to 1 and fakes to 0, G pulls its images to 1."""

    name = "lsgan"
    calls: ClassVar[dict[str, int]] = {"d": 0, "g": 0}  # how often training called its losses

    def discriminator_loss(self, real, labels, fake, code):
        d_real, d_fake = self.discriminator(real), self.discriminator(fake)
        d_loss = 0.5 * ((d_real - 1) ** 2).mean() + 0.5 * (d_fake**2).mean()
        LeastSquaresGAN.calls["d"] += 1
        return d_loss, {"train/d_loss": d_loss.detach()}, d_real, d_fake

    def generator_loss(self, fake, code):
        g_loss = 0.5 * ((self.discriminator(fake) - 1) ** 2).mean()
        LeastSquaresGAN.calls["g"] += 1
        return g_loss, {"train/g_loss": g_loss.detach()}


def test_a_variant_written_in_a_test_file_trains_through_the_real_config(tmp_path):
    LeastSquaresGAN.calls.update(d=0, g=0)
    metrics = train(compose_run(tmp_path, "model=vanilla", f"model._target_={__name__}.LeastSquaresGAN",
                                "model.d_steps=1", "trainer.max_epochs=2"))
    assert LeastSquaresGAN.calls == {"d": 6, "g": 6}  # its losses, at every batch of the 2 x 3
    # what the base and the callbacks give every variant: logs, the quality metrics, the grid, the checkpoints
    assert {"train/d_loss", "train/g_loss", "train/d_real", "val/fid", "val/real_fid"} <= metrics.keys()
    assert "val/label_accuracy" not in metrics  # its samples are asked for no label
    assert (tmp_path / "samples" / "epoch_001.png").is_file()
    checkpoint = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert checkpoint["variant"] == "lsgan" and checkpoint["global_step"] == 12
    # its generator samples like any other, named as it names itself
    sampler = load_generator(str(tmp_path / "checkpoints" / "last.ckpt"))
    assert sampler.name == "lsgan" and sampler.sample(4, seed=0).shape == (4, 28, 28)


def _build(*overrides: str) -> GAN:
    cfg = compose_config([*overrides, "model.noise_dim=8", "~callbacks.quality", "~callbacks.best_checkpoint"])
    return instantiate(cfg.model, image_shape=(1, 28, 28), num_classes=10)


def test_what_a_variant_leaves_alone_is_the_unconditional_gan():
    gan = _build("model=vanilla")
    z, code = gan.draw_latent(5)
    assert z.shape == (5, 8) and code is None and gan.condition(torch.arange(5)) is None
    images, labels, codes = gan.evaluation_samples(0, 3, torch.Generator().manual_seed(0))
    assert images.shape == (3, 1, 28, 28) and labels is None and codes is None
    assert not hasattr(gan, "fixed_code") and gan.fixed_z.shape == (64, 8)  # an 8 x 8 grid of noises


def test_the_conditional_gan_adds_the_digit_everywhere_a_label_goes():
    gan = _build("model=cgan")
    z, code = gan.draw_latent(5)
    assert z.shape == (5, 8) and code.shape == (5,) and code.max() < 10
    assert gan.condition(code) is code  # D is told the digit
    images, labels, codes = gan.evaluation_samples(7, 5, torch.Generator().manual_seed(0))
    assert images.shape == (5, 1, 28, 28) and labels.tolist() == [7, 8, 9, 0, 1] and codes is None  # every digit equally often
    assert gan.fixed_code.tolist() == [d for d in range(10) for _ in range(8)]  # a grid row per digit

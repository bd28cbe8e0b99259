"""The recipe switches: losses, gradient penalty, spectral norm, minibatch standard deviation, generator EMA, TTUR,
projection discriminator, D steps per G step, gradient clipping, and the seed projects' recipes as experiments."""

import logging

import lightning as L
import pytest
import torch

from gan_lightning.checkpoint import load_checkpoint, read_generator
from gan_lightning.config import check_overrides, compose_config
from gan_lightning.data import ImageDataModule
from gan_lightning.errors import UserError
from gan_lightning.models.conditional import class_loss
from gan_lightning.models.losses import discriminator_loss, generator_loss, gradient_penalty
from gan_lightning.networks import DCGANDiscriminator, MLPDiscriminator
from gan_lightning.networks.common import MinibatchStd
from gan_lightning.pretrained import export
from gan_lightning.train import build, train
from tests.conftest import compose_run

IMAGE_SHAPE = (1, 28, 28)


# ---- losses ---------------------------------------------------------------------------------------------------

def test_hinge_loss_only_counts_margin_violations():
    d_real, d_fake = torch.tensor([2.0, 0.5]), torch.tensor([-3.0, 0.0])
    # relu(1 - real) = [0, 0.5] -> 0.25; relu(1 + fake) = [0, 1] -> 0.5
    assert discriminator_loss("hinge", d_real, d_fake).item() == pytest.approx(0.75)
    assert generator_loss("hinge", d_fake).item() == pytest.approx(1.5)


def test_wasserstein_critic_loss_is_the_score_gap():
    d_real, d_fake = torch.tensor([3.0, 1.0]), torch.tensor([0.0, -2.0])
    assert discriminator_loss("wgan-gp", d_real, d_fake).item() == pytest.approx(-3.0)
    assert generator_loss("wgan-gp", d_fake).item() == pytest.approx(1.0)


def test_bce_is_the_minimax_d_loss_and_the_non_saturating_g_loss():
    d_real, d_fake = torch.tensor([0.0]), torch.tensor([0.0])  # D(x) = D(G(z)) = 0.5
    assert discriminator_loss("bce", d_real, d_fake).item() == pytest.approx(2 * torch.log(torch.tensor(2.0)).item())
    assert generator_loss("bce", torch.tensor([10.0])).item() < 1e-3  # -log D(G(z)): small when D is fooled


def test_unknown_loss_is_refused():
    with pytest.raises(ValueError, match="unknown GAN loss 'wgan'"):
        discriminator_loss("wgan", torch.zeros(1), torch.zeros(1))


class LinearCritic(torch.nn.Module):
    """D(x) = <w, x>: its gradient is w everywhere, so the penalty is (||w|| - 1)^2 exactly."""

    def __init__(self, norm: float):
        super().__init__()
        w = torch.randn(*IMAGE_SHAPE)
        self.w = torch.nn.Parameter(w / w.norm() * norm)

    def forward(self, x, labels=None):
        return (x * self.w).flatten(1).sum(1)


@pytest.mark.parametrize("norm", [0.5, 1.0, 3.0])
def test_gradient_penalty_is_the_squared_distance_of_the_gradient_norm_from_one(norm):
    critic = LinearCritic(norm)
    real, fake = torch.rand(8, *IMAGE_SHAPE), torch.rand(8, *IMAGE_SHAPE)
    assert gradient_penalty(critic, real, fake).item() == pytest.approx((norm - 1) ** 2, rel=1e-4, abs=1e-6)


def test_gradient_penalty_is_computed_in_fp32_under_bf16_autocast():
    critic = DCGANDiscriminator(IMAGE_SHAPE, batch_norm=False)
    real, fake = torch.rand(4, *IMAGE_SHAPE), torch.rand(4, *IMAGE_SHAPE)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert critic(real).dtype == torch.bfloat16  # the surrounding precision really is bf16
        penalty = gradient_penalty(critic, real, fake)
    assert penalty.dtype == torch.float32
    penalty.backward()  # differentiable w.r.t. D's weights (create_graph)
    assert critic.net[0].weight.grad is not None and critic.net[0].weight.grad.abs().sum() > 0


# ---- networks ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda: DCGANDiscriminator(IMAGE_SHAPE, ndf=16, batch_norm=False, spectral_norm=True),
    lambda: MLPDiscriminator(IMAGE_SHAPE, hidden_dims=(64, 32), spectral_norm=True),
])
def test_spectral_norm_bounds_every_layer_by_one(make):
    torch.manual_seed(0)
    discriminator = make().train()
    for _ in range(30):  # power iterations run in training forwards
        discriminator(torch.randn(4, *IMAGE_SHAPE))
    layers = [m for m in discriminator.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert layers and all(hasattr(m, "parametrizations") for m in layers)
    for layer in layers:
        sigma = torch.linalg.matrix_norm(layer.weight.detach().flatten(1), ord=2).item()
        assert sigma == pytest.approx(1.0, abs=0.05)
        original = torch.linalg.matrix_norm(layer.parametrizations.weight.original.detach().flatten(1), ord=2).item()
        assert original != pytest.approx(1.0, abs=0.05)  # it is the normalisation that makes it 1


@pytest.mark.parametrize("cls", [DCGANDiscriminator, MLPDiscriminator])
def test_projection_discriminator_takes_the_label_by_projection_not_as_input(cls):
    torch.manual_seed(0)
    discriminator = cls(IMAGE_SHAPE, num_classes=10, conditioning="projection")
    first = next(m for m in discriminator.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
    assert (first.in_channels if isinstance(first, torch.nn.Conv2d) else first.in_features) == (
        1 if cls is DCGANDiscriminator else 28 * 28)  # the image alone, no label maps
    torch.nn.init.normal_(discriminator.projection.embed.weight, 0.0, 1.0)
    x = torch.rand(1, *IMAGE_SHAPE).repeat(10, 1, 1, 1)
    scores = discriminator.eval()(x, torch.arange(10))
    assert scores.shape == (10,) and scores.unique().numel() == 10  # same image, a different score per digit
    # a mixture of labels projects to the mixture of the scores (the embedding is linear in the one-hot vector)
    mix = torch.zeros(1, 10)
    mix[0, 3], mix[0, 7] = 0.25, 0.75
    assert discriminator(x[:1], mix).item() == pytest.approx((0.25 * scores[3] + 0.75 * scores[7]).item(), rel=1e-4)


def test_minibatch_std_is_each_groups_average_feature_deviation():
    x = torch.randn(8, 3, 5, 5)
    out = MinibatchStd(group_size=4)(x)
    assert out.shape == (8, 4, 5, 5) and torch.equal(out[:, :3], x)
    for i in range(8):  # image i is in group i % 2: images i % 2, i % 2 + 2, ...
        group = x[i % 2::2]
        expected = group.std(dim=0, unbiased=False).mean()
        assert torch.allclose(out[i, 3], torch.full((5, 5), expected.item()), atol=1e-5)
    # a channels-last map (the DCGAN's layout) gets the same feature, and stays channels-last
    channels_last = MinibatchStd(group_size=4)(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(channels_last, out, atol=1e-6)
    assert channels_last.is_contiguous(memory_format=torch.channels_last) and out.is_contiguous()
    # a batch the group size does not divide uses its largest divisor below it; a prime batch is one group
    assert MinibatchStd(4)(torch.randn(6, 10)).shape == (6, 11)
    assert MinibatchStd(4)(torch.randn(7, 10))[:, -1].unique().numel() == 1
    with pytest.raises(ValueError, match="at least 2"):
        MinibatchStd(1)


@pytest.mark.parametrize("cls", [DCGANDiscriminator, MLPDiscriminator])
def test_minibatch_std_lets_the_discriminator_see_a_collapsed_batch(cls):
    torch.manual_seed(0)
    image = torch.rand(1, *IMAGE_SHAPE) * 2 - 1
    collapsed = image.repeat(8, 1, 1, 1)  # a generator that draws one digit
    varied = torch.cat([image, torch.rand(7, *IMAGE_SHAPE) * 2 - 1])  # the same image among different ones
    with_std = cls(IMAGE_SHAPE, minibatch_std=4).eval()
    # the same image is scored differently depending on the variety of the batch around it
    assert with_std(collapsed)[0].item() != pytest.approx(with_std(varied)[0].item(), abs=1e-6)
    without = cls(IMAGE_SHAPE).eval()
    assert without(collapsed)[0].item() == pytest.approx(without(varied)[0].item(), abs=1e-6)


def test_unknown_conditioning_is_refused():
    with pytest.raises(ValueError, match="conditioning must be one of concat, projection"):
        DCGANDiscriminator(IMAGE_SHAPE, num_classes=10, conditioning="film")


# ---- the GAN module -------------------------------------------------------------------------------------------

def _gan(*overrides):
    cfg = compose_config(["~callbacks.quality", "~callbacks.best_checkpoint", *overrides])
    return build(cfg, "model", image_shape=IMAGE_SHAPE, num_classes=10)


def test_ema_update_blends_towards_the_generator_with_a_warm_up():
    gan = _gan("model=vanilla", "model.ema_decay=0.999")
    for p in gan.generator_ema.parameters():
        p.data.zero_()
    for p in gan.generator.parameters():
        p.data.fill_(1.0)
    gan._update_ema()  # first update: decay = min(0.999, 1/10) = 0.1
    assert all(torch.allclose(p, torch.full_like(p, 0.9)) for p in gan.generator_ema.parameters())
    gan.ema_updates.fill_(10**6)
    gan._update_ema()  # long after: decay = 0.999
    assert all(torch.allclose(p, torch.full_like(p, 0.9 * 0.999 + 0.001)) for p in gan.generator_ema.parameters())
    # buffers (BatchNorm running statistics) are copied, not averaged
    assert all(torch.equal(a, b) for a, b in zip(gan.generator_ema.buffers(), gan.generator.buffers()))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_ema_update_never_waits_for_the_gpu():
    gan = _gan("model=dcgan", "model.ema_decay=0.999").cuda()
    torch.cuda.set_sync_debug_mode("error")  # any device-to-host copy raises
    try:
        for _ in range(3):
            gan._update_ema()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert gan.ema_updates.item() == 3


def test_without_ema_there_is_no_average_generator():
    gan = _gan("model=dcgan", "model.ema_decay=0")
    assert gan.generator_ema is None and gan.sampling_generator is gan.generator


def test_two_time_scale_learning_rates():
    gan = _gan("model=dcgan", "optimizer.lr=1e-4", "optimizer.d_lr=4e-4", "optimizer.beta1=0.0", "optimizer.beta2=0.9")
    opt_g, opt_d = gan.configure_optimizers()
    assert opt_g.param_groups[0]["lr"] == 1e-4 and opt_d.param_groups[0]["lr"] == 4e-4
    assert opt_g.param_groups[0]["betas"] == opt_d.param_groups[0]["betas"] == (0.0, 0.9)
    # with `adam` the discriminator follows the generator's learning rate (the DCGAN's own option sets both)
    opt_g, opt_d = _gan("model=dcgan", "optimizer=adam", "optimizer.lr=3e-4").configure_optimizers()
    assert opt_d.param_groups[0]["lr"] == 3e-4


def _gradients(*overrides) -> dict[str, torch.Tensor]:
    """Train two real batches; each network's gradients at its last step, as one vector (the G step freezes D's)."""
    torch.manual_seed(0)
    gan = _gan("model=vanilla", "model.ema_decay=0", *overrides)
    trainer = L.Trainer(accelerator="cpu", max_epochs=1, limit_train_batches=2, limit_val_batches=0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(gan, datamodule=ImageDataModule(batch_size=16))
    return {name: torch.cat([p.grad.flatten() for p in net.parameters()])
            for name, net in (("generator", gan.generator), ("discriminator", gan.discriminator))}


def test_gradient_clipping_bounds_each_networks_gradients_before_its_step():
    unclipped = _gradients()
    assert all(g.norm() > 0.01 and g.abs().max() > 1e-4 for g in unclipped.values())  # so the clips have work
    by_norm = _gradients("model.gradient_clip_val=0.01")
    assert all(g.norm().item() == pytest.approx(0.01, rel=1e-3) for g in by_norm.values())
    by_value = _gradients("model.gradient_clip_val=1e-4", "model.gradient_clip_algorithm=value")
    assert all(g.abs().max().item() <= 1e-4 for g in by_value.values())


def test_clipping_works_with_the_fused_adam_under_bf16_and_is_refused_where_it_cannot(tmp_path):
    """Lightning's clip_gradients refuses a fused optimizer under any mixed precision; without a loss scaler the
    module clips itself (seen on a CPU with native bf16, where trainer=cpu picks bf16-mixed)."""
    metrics = train(compose_run(tmp_path, "model=vanilla", "trainer.precision=bf16-mixed", "model.gradient_clip_val=0.05",
                                "optimizer.fused=true"))
    assert torch.isfinite(torch.tensor(metrics["train/d_loss"]))
    with pytest.raises(UserError, match="optimizer.fused=false"):  # 16-mixed: the scaler unscales inside the step
        check_overrides(["trainer.precision=16-mixed", "model.gradient_clip_val=0.05"])


def test_wgan_gp_refuses_batch_norm_in_the_discriminator():
    with pytest.raises(UserError, match="model.discriminator.batch_norm=false"):
        check_overrides(["model=dcgan", "model.loss=wgan-gp", "model.discriminator.batch_norm=true"])
    with pytest.raises(UserError, match="model.discriminator.batch_norm=false"):  # the DCGAN's own BatchNorm D too
        check_overrides(["model=dcgan", "model.loss=wgan-gp"])
    cfg = compose_config(["model=dcgan", "model.loss=wgan-gp", "model.discriminator.batch_norm=false",
                          "~callbacks.quality", "~callbacks.best_checkpoint"])
    cfg.model.discriminator.batch_norm = True  # past the check that composing made
    with pytest.raises(AssertionError):  # the module itself only asserts: the config is where values are checked
        build(cfg, "model", image_shape=IMAGE_SHAPE, num_classes=10)
    with pytest.raises(UserError, match="model.discriminator.batch_norm=false"):  # before a sweep starts, too
        check_overrides(["model=dcgan", "model.discriminator.batch_norm=true", "model.loss=hinge,wgan-gp"])
    _gan("model=dcgan", "model.loss=wgan-gp", "model.discriminator.batch_norm=false")  # without BatchNorm: fine


# ---- real runs ------------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("overrides", [
    ["model=dcgan", "model.loss=hinge", "model.discriminator.spectral_norm=true", "model.discriminator.batch_norm=false"],
    ["model=vanilla", "model.loss=wgan-gp", "model.d_steps=2"],
    ["model=cgan", "model.discriminator.conditioning=projection", "model.loss=hinge"],
    ["model=vanilla", "model.discriminator.minibatch_std=4"],
    ["model=cgan", "model.class_loss_weight=1.0"],
], ids=["dcgan-hinge-sn", "vanilla-wgan-gp", "cgan-projection", "vanilla-minibatch-std", "cgan-class-loss"])
def test_each_recipe_trains_a_few_real_batches(tmp_path, overrides):
    metrics = train(compose_run(tmp_path, *overrides, "model.ema_decay=0.9"))
    assert all(torch.isfinite(torch.tensor(v)) for k, v in metrics.items() if k.startswith("train/"))
    assert "val/fid" in metrics


@pytest.mark.slow
def test_the_learning_rates_decay_linearly_to_zero_over_the_last_epochs(tmp_path):
    """optimizer.lr_decay_epochs=2 of 3 epochs of 4 batches: each step's rates are the configured ones (G's and D's
    own) times min(1, (3 - epochs done) / 2); a run resumed from a checkpoint mid-decay follows the same schedule."""
    overrides = ["model=vanilla", "optimizer.lr_decay_epochs=2", "optimizer.lr=1e-3", "optimizer.d_lr=4e-3",
                 "trainer.max_epochs=3", "trainer.limit_train_batches=4", "callbacks.model_checkpoint.every_n_epochs=1"]
    train(compose_run(tmp_path / "run", *overrides))

    def rates(checkpoint):  # the rates of the last step before the checkpoint: G's, D's
        return [state["param_groups"][0]["lr"] for state in load_checkpoint(checkpoint)["optimizer_states"]]

    checkpoints = tmp_path / "run" / "checkpoints"
    assert rates(checkpoints / "epoch_000.ckpt") == [1e-3, 4e-3]  # 0.75 epochs done: still constant
    assert rates(checkpoints / "epoch_001.ckpt") == pytest.approx([1e-3 * 0.625, 4e-3 * 0.625])  # 1.75 done
    assert rates(checkpoints / "last.ckpt") == pytest.approx([1e-3 * 0.125, 4e-3 * 0.125])  # 2.75 done
    train(compose_run(tmp_path / "resumed", *overrides, f"ckpt_path={checkpoints / 'epoch_001.ckpt'}"))
    assert rates(tmp_path / "resumed" / "checkpoints" / "last.ckpt") == pytest.approx([1e-3 * 0.125, 4e-3 * 0.125])


def test_the_cgan_decays_its_learning_rates_over_the_last_30_percent_of_its_budget(tmp_path):
    """model=cgan's default `model.lr_decay_share: 0.3`, over 2 epochs of 5 batches: constant through the first
    epoch, then down to (1 - 0.9) / 0.3 of the configured rates at the last step, 0.9 of the budget done."""
    overrides = ["model=cgan", "model.generator.ngf=8", "model.discriminator.ndf=8", "optimizer.d_lr=4e-4",
                 "trainer.max_epochs=2", "trainer.limit_train_batches=5", "callbacks.model_checkpoint.every_n_epochs=1",
                 "~callbacks.quality", "~callbacks.best_checkpoint"]
    train(compose_run(tmp_path, *overrides))

    def rates(checkpoint):  # the rates of the last step before the checkpoint: G's, D's
        return [state["param_groups"][0]["lr"] for state in load_checkpoint(checkpoint)["optimizer_states"]]

    assert rates(tmp_path / "checkpoints" / "epoch_000.ckpt") == [2e-4, 4e-4]  # 0.4 of the budget done
    assert rates(tmp_path / "checkpoints" / "last.ckpt") == pytest.approx([2e-4 / 3, 4e-4 / 3])
    assert all(compose_config([f"model={m}"]).model.lr_decay_share == 0 for m in ("vanilla", "infogan"))
    assert compose_config(["model=dcgan"]).model.lr_decay_share == 0.4


@pytest.mark.slow
def test_under_a_time_budget_the_learning_rates_decay_to_zero_with_it(tmp_path, caplog):
    """trainer.max_time ends training long before max_epochs would: the decay (the last 5 of 10 epochs: half the
    budget) follows the time, so the last step's rates are near 0, not the constant ones of a run 1/50 of the way
    through its epochs; the command that trains on doubles the time budget (a resumed run keeps its elapsed time)."""
    overrides = ["model=vanilla", "optimizer.lr_decay_epochs=5", "optimizer.lr=1e-3", "optimizer.d_lr=4e-3",
                 "trainer.max_epochs=10", "trainer.limit_train_batches=null", "trainer.max_time=00:00:00:04"]
    with caplog.at_level(logging.INFO, logger="gan_lightning.train"):
        train(compose_run(tmp_path, *overrides))
    assert "trainer.max_epochs=20 trainer.max_time=00:00:00:08 ckpt_path=" in caplog.text
    checkpoint = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert checkpoint["epoch"] == 0  # stopped by the time budget inside the first of 10 epochs
    g_lr, d_lr = (state["param_groups"][0]["lr"] for state in checkpoint["optimizer_states"])
    assert 0 <= g_lr < 0.2 * 1e-3 and 0 <= d_lr < 0.2 * 4e-3, (g_lr, d_lr)


def test_the_class_loss_gives_d_a_class_head_learnt_on_real_digits_and_g_its_reading(tmp_path):
    metrics = train(compose_run(tmp_path, "model=cgan", "model.class_loss_weight=1.0", "trainer.limit_train_batches=6"))
    assert metrics["train/d_class_loss"] > 0 and metrics["train/g_class_loss"] > 0
    checkpoint = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert checkpoint["networks"]["discriminator"]["class_head"] is True  # the checkpoint rebuilds the head
    assert any(k.startswith("discriminator.class_head.") for k in checkpoint["state_dict"])
    export(tmp_path / "checkpoints" / "last.ckpt", tmp_path / "export")  # the generator exports as any other


def test_class_loss_is_the_cross_entropy_of_the_class_head():
    torch.manual_seed(0)
    d = DCGANDiscriminator(IMAGE_SHAPE, num_classes=10, ndf=8, class_head=True, conditioning="projection").eval()
    x, labels = torch.randn(6, *IMAGE_SHAPE), torch.arange(6)
    logits, classes = d(x, labels, with_classes=True)
    assert logits.shape == (6,) and classes.shape == (6, 10)
    assert torch.equal(d(x, labels), logits)  # by default, the real/fake logit alone
    assert class_loss(classes, labels).item() == pytest.approx(torch.nn.functional.cross_entropy(classes, labels).item())
    with pytest.raises(AssertionError, match="built with a head"):
        DCGANDiscriminator(IMAGE_SHAPE, num_classes=10, ndf=8)(x, labels, with_classes=True)
    with pytest.raises(ValueError, match="conditional GAN only"):
        DCGANDiscriminator(IMAGE_SHAPE, num_classes=0, ndf=8, class_head=True)


def test_d_steps_takes_that_many_d_steps_per_g_step(tmp_path):
    train(compose_run(tmp_path, "model=vanilla", "model.d_steps=3", "trainer.limit_train_batches=6"))
    opt_g, opt_d = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["optimizer_states"]
    assert opt_d["state"][0]["step"].item() == 6 and opt_g["state"][0]["step"].item() == 2


def test_the_ema_generator_is_checkpointed_and_is_what_samples_and_exports(tmp_path):
    train(compose_run(tmp_path, "model=cgan", "model.ema_decay=0.5"))
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    state = load_checkpoint(ckpt)["state_dict"]
    ema = {k.removeprefix("generator_ema."): v for k, v in state.items() if k.startswith("generator_ema.")}
    raw = {k.removeprefix("generator."): v for k, v in state.items() if k.startswith("generator.")}
    assert ema.keys() == raw.keys() and state["ema_updates"].item() == 3
    assert any(not torch.equal(ema[k], raw[k]) for k in ema if k.endswith("weight"))
    generator, _ = read_generator(ckpt)
    assert all(torch.equal(v, ema[k]) for k, v in generator.state_dict().items())
    exported, _ = read_generator(export(ckpt, tmp_path / "generator.pt"))
    assert all(torch.equal(v, ema[k]) for k, v in exported.state_dict().items())


# ---- the baseline recipes -------------------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["vanilla", "dcgan", "cgan"])  # (InfoGAN's recipe is the paper's: no baseline)
def test_baseline_recipes_are_one_experiment_away(model):
    with pytest.raises(UserError, match=rf"^experiment=seed_{model} is now called experiment=baseline_{model} "):
        compose_config([f"experiment=seed_{model}"])  # the old name, which read as a random seed
    cfg = compose_config([f"experiment=baseline_{model}"])
    assert cfg.model.loss == "bce" and cfg.model.ema_decay == 0 and cfg.model.noise_dim == 64
    assert cfg.model.gradient_clip_val is None
    assert cfg.optimizer.lr == cfg.optimizer.d_lr == 2e-4 and (cfg.optimizer.beta1, cfg.optimizer.beta2) == (0.5, 0.999)
    assert cfg.data.batch_size == 128 and cfg.model._target_.endswith("ConditionalGAN") == (model == "cgan")
    assert not cfg.model.discriminator.spectral_norm and cfg.model.discriminator.minibatch_std == 0
    if model != "vanilla":
        assert cfg.model.discriminator.batch_norm and cfg.model.discriminator.conditioning == "concat"
        # the classic DCGAN layers, whatever the default recipe adds
        assert cfg.model.generator.n_extra_layers == cfg.model.discriminator.n_extra_layers == 0

import os
import subprocess
import sys

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from gan_lightning.config import CONFIG_DIR, check_overrides, compose_config
from gan_lightning.errors import UserError
from gan_lightning.models import DCGAN, GAN, VARIANTS, ConditionalGAN, InfoGAN, VanillaGAN

GROUPS = sorted(p.name for p in CONFIG_DIR.iterdir() if p.is_dir())


def test_expected_groups_exist():
    for group in ["model", "optimizer", "budget", "trainer", "data", "logger", "callbacks", "experiment", "paths",
                  "hydra"]:
        assert group in GROUPS


@pytest.mark.parametrize(
    "group, option",
    [(g, p.stem) for g in GROUPS if g != "hydra" for p in sorted((CONFIG_DIR / g).glob("*.yaml"))],
)
def test_every_option_composes_and_resolves(group, option, tmp_path):
    folder = [f"data.data_dir={tmp_path}"] if option == "image_folder" else []  # the one group with a required key
    cfg = compose_config([f"{group}={option}", f"paths.output_dir={tmp_path}", *folder])
    container = OmegaConf.to_container(cfg, resolve=True)
    assert container["paths"]["output_dir"] == str(tmp_path)


@pytest.mark.parametrize("model, cls", [("vanilla", VanillaGAN), ("dcgan", DCGAN), ("cgan", ConditionalGAN),
                                        ("infogan", InfoGAN)])
def test_model_configs_build_their_variant(model, cls):
    cfg = compose_config([f"model={model}", "model.noise_dim=12", "optimizer.lr=1e-3"])
    gan = instantiate(cfg.model, image_shape=(1, 28, 28), num_classes=10)
    assert type(gan) is cls and isinstance(gan, GAN) and VARIANTS[model] is cls and gan.name == model
    # an InfoGAN's G reads its codes after the noise
    assert gan.generator.noise_dim == 12 + (12 if cls is InfoGAN else 0)
    # only the conditional GAN's networks take the digit
    assert gan.generator.num_classes == gan.discriminator.num_classes == (10 if cls is ConditionalGAN else 0)
    opt_g, opt_d = gan.configure_optimizers()
    assert opt_g.param_groups[0]["lr"] == 1e-3 and opt_g.param_groups[0]["betas"] == (0.5, 0.999)
    assert {id(p) for p in opt_d.param_groups[0]["params"]} == {id(p) for p in gan.discriminator.parameters()}


def test_trainer_arguments_are_overridable():
    cfg = compose_config(["trainer.limit_train_batches=7", "trainer.accelerator=cpu", "trainer.max_epochs=3",
                          "data.batch_size=16", "seed=3"])
    assert cfg.trainer.limit_train_batches == 7 and cfg.trainer.accelerator == "cpu"
    assert cfg.trainer.max_epochs == 3 and cfg.data.batch_size == 16 and cfg.seed == 3


def test_every_trainer_argument_is_in_the_trainer_config():
    import inspect

    import lightning as L

    listed = set(OmegaConf.load(CONFIG_DIR / "trainer" / "default.yaml")) - {"_target_"}
    arguments = set(inspect.signature(L.Trainer).parameters) - {"logger", "callbacks", "plugins"}
    assert arguments <= listed, sorted(arguments - listed)


@pytest.mark.parametrize("model, lr, d_lr", [("dcgan", 1e-3, 2e-4), ("vanilla", 8e-4, 8e-4), ("cgan", 2e-4, 2e-4),
                                             ("infogan", 1e-3, 2e-4)])
def test_each_variant_chooses_its_learning_rates(model, lr, d_lr):
    """A model config picks its optimizer option (dcgan: adam_dcgan); the DCGAN paper's betas for all; the command
    line's optimizer option and values win over the model's choice."""
    cfg = compose_config([f"model={model}"])
    assert cfg.optimizer.lr == cfg.model.optimizer.generator.lr == lr
    assert cfg.optimizer.d_lr == cfg.model.optimizer.discriminator.lr == d_lr
    assert [cfg.optimizer.beta1, cfg.optimizer.beta2] == [0.5, 0.999]
    assert compose_config([f"model={model}", "optimizer=adam"]).optimizer.lr == 2e-4
    cfg = compose_config([f"model={model}", "optimizer.lr=1e-3", "optimizer.d_lr=1e-4"])
    assert (cfg.model.optimizer.generator.lr, cfg.model.optimizer.discriminator.lr) == (1e-3, 1e-4)


@pytest.mark.parametrize("model, batch_size, epochs", [("dcgan", 64, 7), ("vanilla", 128, 28), ("cgan", 32, 10),
                                                    ("infogan", 64, 10)])
def test_each_variant_chooses_the_budget_its_recipe_was_measured_at(model, batch_size, epochs):
    """A model config picks its budget option (dcgan: 7 epochs of 64; infogan: the paper's batches of 64); the command
    line's values and budget option win over the model's choice, and a later data option keeps the model's budget."""
    cfg = compose_config([f"model={model}"])
    assert (cfg.data.batch_size, cfg.trainer.max_epochs) == (batch_size, epochs)
    assert compose_config([f"model={model}", "data=fashion_mnist"]).data.batch_size == batch_size
    cfg = compose_config([f"model={model}", "budget=default"])
    assert (cfg.data.batch_size, cfg.trainer.max_epochs, cfg.trainer.check_val_every_n_epoch) == (32, 10, 1)
    cfg = compose_config([f"model={model}", "data.batch_size=16", "trainer.max_epochs=3"])
    assert (cfg.data.batch_size, cfg.trainer.max_epochs) == (16, 3)


def test_the_default_model_is_the_dcgan():
    assert compose_config([]).model.generator._target_.endswith("DCGANGenerator")


def test_the_dcgan_has_infogans_networks_at_half_width_and_the_cgan_keeps_its_convolutional_ones():
    """The cGAN composes on the DCGAN's config: its recipe (the five-minute run's, the bundled model's) must not
    follow the DCGAN's networks, loss, rates or budget."""
    dcgan, cgan = compose_config(["model=dcgan"]).model, compose_config(["model=cgan"]).model
    assert dcgan.loss == "bce" and dcgan.generator.fc_units == dcgan.discriminator.fc_units == 512
    assert dcgan.discriminator.batch_norm and not dcgan.discriminator.spectral_norm
    assert cgan.loss == "hinge" and cgan.generator.fc_units == cgan.discriminator.fc_units == 0
    assert cgan.discriminator.spectral_norm and not cgan.discriminator.batch_norm and cgan.discriminator.ndf == 32
    assert cgan.generator.n_extra_layers == cgan.discriminator.n_extra_layers == 2 and cgan.lr_decay_share == 0.3


EVAL = "callbacks.quality.eval_samples"


@pytest.mark.parametrize("overrides, message", [
    (["model.noise_dim=0"], "model.noise_dim must be an integer from 1 to 65536, got 0"),
    (["model.noise_dim=abc"], "model.noise_dim must be an integer from 1 to 65536"),
    (["optimizer.lr=-1"], "optimizer.lr must be a positive number, got -1"),
    (["optimizer.lr=0"], "optimizer.lr must be a positive number"),
    (["optimizer.d_lr=-1e-4"], "optimizer.d_lr must be a positive number, got -0.0001"),
    (["optimizer.beta1=1"], "optimizer.beta1 must be a number in [0, 1), got 1"),
    (["model.loss=wgan"], "model.loss='wgan' is not one of: bce, hinge, wgan-gp"),
    (["model.d_steps=0"], "model.d_steps must be a positive integer, got 0"),
    (["optimizer.lr_decay_epochs=-1"], "optimizer.lr_decay_epochs must be an integer >= 0, got -1"),
    (["model=vanilla", "optimizer.lr_decay_epochs=29"], (
        "optimizer.lr_decay_epochs=29 decays the learning rates over the last 29 epochs of trainer.max_epochs, which "
        "is 28: give trainer.max_epochs >= 29")),
    (["model=vanilla", "optimizer.lr_decay_epochs=2", "trainer.max_epochs=-1"], "trainer.max_epochs, which is -1"),
    (["optimizer.lr_decay_epochs=2"], ("optimizer.lr_decay_epochs=2 and model.lr_decay_share=0.4 both set the "
                                       "learning-rate decay: give one")),
    (["model.lr_decay_share=1.5"], ("model.lr_decay_share must be a number from 0 to 1 (0 = constant learning "
                                    "rates), got 1.5")),
    (["model=cgan", "optimizer.lr_decay_epochs=3"], ("optimizer.lr_decay_epochs=3 and model.lr_decay_share=0.3 both "
                                                      "set the learning-rate decay: give one")),
    (["model.ema_decay=1.5"], "model.ema_decay must be a number in [0, 1), got 1.5"),
    (["data.batch_size=0"], "data.batch_size must be a positive integer, got 0"),
    (["model=foo"], "model=foo: no such option; choose one of: cgan, dcgan, infogan, vanilla"),
    (["trainer.no_such_argument=1"], "trainer.no_such_argument"),
    (["seed=x"], "seed must be an integer"),
    (["seed=-1"], "seed must be an integer from 0 to 4294967295, or null, got -1"),
    (["seed=4294967296"], "seed must be an integer from 0 to 4294967295, or null, got 4294967296"),
    (["callbacks.last_checkpoint.every_n_batches=-1"],
     "callbacks.last_checkpoint.every_n_batches must be an integer >= 0"),
    (["callbacks.sample_grid.every_n_epochs=0"], "callbacks.sample_grid.every_n_epochs must be a positive integer"),
    (["ckpt_path=[1,2]"], "ckpt_path must be a word or a path, got [1, 2]"),
    (["runs_dir=''"], "runs_dir must be a word or a path, got ''"),
    (["model=[1,2]"], "a config group takes option names, e.g. model=cgan"),
    (["~callbacks.quality"], "~callbacks.best_checkpoint"),
    # keys that moved or belong to one model name where they went
    (["model.quality=null"], "model.quality is now callbacks.quality (switch it off with ~callbacks.quality)"),
    (["model.eval_samples=100"], "model.eval_samples is now callbacks.quality.eval_samples"),
    (["model.conditional=true"], "model.conditional is now model=cgan"),
    (["model=dcgan", "model.class_loss_weight=1"], "model.class_loss_weight belongs to model=cgan only"),
    (["model=dcgan", "model.categorical=10"], "model.categorical belongs to model=infogan only"),
    (["model=infogan", "model.categorical=1"], "model.categorical must be an integer >= 2, got 1"),
    (["model=infogan", "model.continuous=-1"], "model.continuous must be an integer >= 0, got -1"),
    (["model=infogan", "model.info_weight=0"], "model.info_weight must be a positive number, got 0"),
    (["model=infogan", "model.discriminator._target_=gan_lightning.networks.MLPDiscriminator"],
     "model=infogan needs a discriminator with a head for Q"),
    (["trainer.limit_val_batches=0"], "~callbacks.best_checkpoint"),
    # no validation split: the quality metrics would never be computed
    (["data.val_size=0"], ("data.val_size=0 leaves no validation, where the quality metrics (callbacks.quality) are "
                           "computed: give a positive data.val_size, or train without them: ~callbacks.quality "
                           "~callbacks.best_checkpoint")),
    (["model=cgan", "model.class_loss_weight=-1"], "model.class_loss_weight must be a number >= 0 (0 = off), got -1"),
    (["model=cgan", "model.discriminator._target_=gan_lightning.networks.MLPDiscriminator"],
     "model.class_loss_weight > 0 (AC-GAN) needs a discriminator with a class head"),
    # the validation metrics' reference set: too small for the k-nearest-neighbour balls of precision and recall
    (["data.val_size=-1"], "data.val_size must be an integer >= 0, or null, got -1"),
    (["data.val_size=5"], ("data.val_size=5: the quality metrics score against the validation split, and its "
                           "k-nearest-neighbour balls need at least 6 images; give a larger data.val_size")),
    # they would crash the first validation, after a whole epoch of training
    (["callbacks.quality.eval_samples=1"], f"{EVAL} must be an integer from 2 to 10000, got 1"),
    (["callbacks.quality.eval_samples=0"], f"{EVAL} must be an integer from 2 to 10000, got 0"),
    (["callbacks.quality.eval_samples=-5"], f"{EVAL} must be an integer from 2 to 10000, got -5"),
    (["callbacks.quality.eval_samples=abc"], f"{EVAL} must be an integer from 2 to 10000, got 'abc'"),
    (["callbacks.quality.eval_samples=1.5"], f"{EVAL} must be an integer from 2 to 10000, got 1.5"),
    # more than the held-out real images: the reference row would not be at the same n
    (["callbacks.quality.eval_samples=10001"], f"{EVAL} must be an integer from 2 to 10000, got 10001"),
    (["callbacks.quality.kid_subset_size=1"], "callbacks.quality.kid_subset_size must be an integer >= 2, got 1"),
    (["callbacks.quality.kid_subset_size=x"], "callbacks.quality.kid_subset_size must be an integer >= 2, got 'x'"),
    # Lightning refuses them under manual optimization, but only once the run has started
    (["trainer.gradient_clip_val=1.0"], "use model.gradient_clip_val"),
    (["trainer.accumulate_grad_batches=4"], "raise data.batch_size instead"),
    (["model.gradient_clip_val=-1"], "model.gradient_clip_val must be a positive number, or null, got -1"),
    (["model.gradient_clip_algorithm=l2"], "model.gradient_clip_algorithm='l2' is not one of: norm, value"),
    (["model.augment=[translation,rotate]"], "model.augment: unknown augmentation 'rotate'; choose from"),
    (["model.augment=7"], "model.augment must be a list of augmentations"),
    # a sweep is checked for every value, not just the first
    (["model.noise_dim=32,0"], "model.noise_dim must be an integer from 1 to 65536, got 0"),
    # a run that would train nothing
    (["trainer.max_epochs=0"], "trainer.max_epochs=0 trains nothing"),
    (["trainer.max_steps=0"], "trainer.max_steps=0 trains nothing"),
    (["trainer.limit_train_batches=0"], "trainer.limit_train_batches=0 trains on no batch"),
    (["trainer.limit_train_batches=0.0"], "trainer.limit_train_batches=0 trains on no batch"),
    # a key that is true or false takes nothing else, wherever it is
    (["data.download=maybe"], "data.download must be true or false, got 'maybe'"),
    (["model.compile=yes"], "model.compile must be true or false, got 'yes'"),
    (["trainer.enable_progress_bar=1"], "trainer.enable_progress_bar must be true or false, got 1"),
    (["model=vanilla", "model.discriminator.spectral_norm=maybe"], "model.discriminator.spectral_norm must be true"),
    (["trainer.fast_dev_run=maybe"], "trainer.fast_dev_run must be true or false"),
    # a negative weight, decay or learning rate, also one the chosen loss or model does not use
    (["model.gp_weight=-1"], "model.gp_weight must be a number >= 0, got -1"),
    (["optimizer.weight_decay=-0.1"], "optimizer.weight_decay must be a number >= 0, got -0.1"),
    (["optimizer.generator.lr=-1"], "optimizer.generator.lr must be a number >= 0, got -1"),
    (["model=infogan", "model.continuous_weight=-1"], "model.continuous_weight must be a number >= 0"),
    (["callbacks.health.action=maybe"], "callbacks.health.action='maybe' is not one of: warn, stop"),
    # sizes that would allocate gigabytes or loop for ever, before anything is built
    (["model.noise_dim=1000000000"], "model.noise_dim must be an integer from 1 to 65536, got 1000000000"),
    (["model.generator.n_extra_layers=1000"], "model.generator: n_extra_layers=1000 is beyond what a network can have"),
    # what Hydra's lexer cannot read: a word without `=`, a space or a quote left unquoted
    (["model.noise_dim=64", "2"], "cannot read the override '2': each argument is one key=value"),
    (["runs_dir=my 'runs"], "cannot read the override \"runs_dir=my 'runs\""),
])
@pytest.mark.slow
def test_bad_values_name_the_key(overrides, message):
    with pytest.raises(UserError) as error:
        check_overrides(overrides)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_what_lightning_also_takes_and_a_frozen_generator_stay_accepted():
    for overrides in (["trainer.deterministic=warn"], ["trainer.fast_dev_run=2"], ["optimizer.generator.lr=0"],
                      ["model=dcgan", "model.discriminator.spectral_norm=false"]):
        check_overrides(overrides)


def test_good_sweep_passes_the_check():
    check_overrides(["model.noise_dim=32,64,128", "optimizer.lr=1e-4,2e-4", "model=cgan"])
    check_overrides(["~callbacks.quality", "~callbacks.best_checkpoint"])
    check_overrides(["data.val_size=0", "~callbacks.quality", "~callbacks.best_checkpoint"])
    check_overrides(["callbacks.quality.eval_samples=2,10000", "callbacks.quality.kid_subset_size=2"])
    check_overrides(["model.augment=[translation,cutout]"])


@pytest.mark.parametrize("override", ["trainer.max_epochs=0", "trainer.limit_train_batches=0", "data.download=maybe",
                                      "model.generator.ngf=4096"])
def test_the_command_line_refuses_a_run_that_trains_nothing_or_a_boolean_that_is_not(tmp_path, override):
    """One `error:` line, exit code 2, and no run folder: it never started (not a "completed" run of 0 epochs), nor
    allocated a model of billions of parameters (counted on the meta device first)."""
    done = subprocess.run([sys.executable, str(CONFIG_DIR.parent / "scripts" / "train.py"), override], check=False,
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 2 and done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [["-m", "-x", "model.noise_dim=32,64"], ["model=cgan", "--bad"], ["-", "m"]])
def test_a_flag_that_is_not_one_is_one_line_and_makes_no_sweep_folder(tmp_path, args):
    done = subprocess.run([sys.executable, str(CONFIG_DIR.parent / "scripts" / "train.py"), *args], check=False,
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "not a flag of this command" in done.stderr
    assert list(tmp_path.iterdir()) == []

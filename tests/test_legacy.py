"""Files written before each variant had its own class (gan-lightning 0.1.0) load, draw the same images and resume.

The fixtures in tests/fixtures/legacy/ were written by commit 61908be (see its README): a checkpoint of each model,
its generator exported as a folder and as one `.pt` file, and the images each drew for a fixed seed then.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from gan_lightning import load_generator
from gan_lightning.checkpoint import load_checkpoint
from gan_lightning.errors import UserError
from gan_lightning.train import train
from tests.conftest import compose_run

LEGACY = Path(__file__).parent / "fixtures" / "legacy"
MODELS = ["vanilla", "dcgan", "cgan"]
# the settings the fixtures were trained with (tests/fixtures/legacy/README.md)
TINY = {
    "vanilla": ["model=vanilla", "model.noise_dim=8", "model.generator.hidden_dims=[16,32]",
                "model.discriminator.hidden_dims=[16]"],
    "dcgan": ["model=dcgan", "model.noise_dim=8", "model.generator.ngf=4", "model.discriminator.ndf=4",
              "model.generator.n_extra_layers=1", "model.discriminator.n_extra_layers=1",
              # the DCGAN's networks and loss of 0.1.0, before it took InfoGAN's
              "model.generator.fc_units=0", "model.discriminator.fc_units=0", "model.discriminator.batch_norm=false",
              "model.discriminator.spectral_norm=true", "model.loss=hinge"],
}
TINY["cgan"] = ["model=cgan", *TINY["dcgan"][1:]]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("kind", ["checkpoint", "export", "export.pt"])
def test_a_legacy_file_loads_and_draws_the_images_it_drew_then(model, kind):
    expected = np.load(LEGACY / "expected_samples.npz")[f"{model}-{kind}"]
    source = LEGACY / (f"{model}-{kind}" if kind != "checkpoint" else f"{model}-checkpoint.pt")
    sampler = load_generator(str(source))
    assert sampler.info["variant"] == model and sampler.info["spec"]["name"].endswith("_generator")
    images = sampler.sample(6, seed=5, **({"digit": 3} if model == "cgan" else {}))
    # the same network and weights: the same pixels, up to a rounding of the last float bit on another CPU
    difference = np.abs(images.astype(int) - expected.astype(int))
    assert difference.max() <= 1 and (difference > 0).mean() < 0.01


@pytest.mark.parametrize("model", MODELS)
def test_a_legacy_checkpoint_resumes_and_the_new_one_records_names(model, tmp_path):
    """Resuming renames what 0.1.0 stored under another name (the grid's labels), and the checkpoint it writes
    records the variant and its networks by registered name, not by module path."""
    legacy = torch.load(LEGACY / f"{model}-checkpoint.pt", weights_only=True)  # as it is on disk
    assert "variant" not in legacy and legacy["networks"]["generator"]["_target_"].startswith("gan_lightning.")
    run = tmp_path / "run"
    train(compose_run(run, *TINY[model], f"ckpt_path={LEGACY / f'{model}-checkpoint.pt'}", "trainer.max_epochs=2",
                      "~callbacks.quality", "~callbacks.best_checkpoint", "~logger", "~callbacks.sample_grid",
                      "trainer.limit_train_batches=2", "trainer.limit_val_batches=0", "data.batch_size=8"))
    resumed = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert resumed["epoch"] == 1 and resumed["global_step"] == legacy["global_step"] + 4  # continued, not restarted
    assert resumed["variant"] == model
    for network, spec in resumed["networks"].items():
        assert "_target_" not in spec and spec["name"] in ("mlp_generator", "mlp_discriminator", "conv_generator",
                                                           "conv_discriminator"), (network, spec)
    # the grid's labels stay where the conditional GAN keeps them, and nowhere else
    assert resumed["state_dict"].keys() - {"fixed_code"} == legacy["state_dict"].keys() - {"fixed_labels"}
    assert ("fixed_code" in resumed["state_dict"]) == (model == "cgan")
    # the generator it trained on is the legacy one's, moved on by the new batches
    ema = [k for k in legacy["state_dict"] if k.startswith("generator_ema.") and k.endswith("weight")]
    assert all(resumed["state_dict"][k].shape == legacy["state_dict"][k].shape for k in ema)
    assert not all(torch.equal(resumed["state_dict"][k], legacy["state_dict"][k]) for k in ema)


def test_a_file_naming_a_network_by_a_module_path_outside_the_registry_is_refused(tmp_path):
    """The legacy module paths are read as the names they stood for, and nothing else is: a path under the package
    that leads elsewhere is still refused."""
    checkpoint = load_checkpoint(LEGACY / "dcgan-checkpoint.pt")
    checkpoint["networks"]["generator"]["_target_"] = "gan_lightning.networks.common.torch.ctypes.util.subprocess.Popen"
    path = tmp_path / "bad.pt"
    torch.save(checkpoint, path)
    with pytest.raises(UserError, match="refusing to build network .*Popen"):
        load_generator(str(path))

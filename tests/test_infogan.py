"""InfoGAN: codes beside the noise, Q reading them back, and the tools that sample, draw and measure them."""

import json

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from gan_lightning import load_generator
from gan_lightning.checkpoint import load_checkpoint
from gan_lightning.config import compose_config
from gan_lightning.errors import UserError
from gan_lightning.evaluate import main as evaluate_main
from gan_lightning.generate import main as generate_main
from gan_lightning.metrics.codes import code_correlations, code_to_digit_accuracy, ink_moments
from gan_lightning.models import InfoGAN
from gan_lightning.train import train
from tests.conftest import compose_run


def _infogan(*overrides: str) -> InfoGAN:
    cfg = compose_config(["model=infogan", "~callbacks.quality", "~callbacks.best_checkpoint", *overrides])
    return instantiate(cfg.model, image_shape=(1, 28, 28), num_classes=10)


def test_g_reads_the_noise_and_the_codes_and_q_is_a_head_on_d():
    gan = _infogan()
    z, code = gan.draw_latent(500)
    assert z.shape == (500, 62) and code.shape == (500, 12)
    assert z.abs().max() < 1 and 0.3 < z.var() < 0.37  # the authors' Uniform(-1, 1) noise: variance 1/3
    assert torch.equal(code[:, :10].sum(1), torch.ones(500))  # one categorical code each, one-hot
    assert set(code[:, :10].argmax(1).tolist()) == set(range(10))
    assert code[:, 10:].min() >= -1 and code[:, 10:].max() <= 1  # continuous codes ~ Uniform(-1, 1)
    assert gan.generator.noise_dim == 74 and gan.generate(z[:4], code[:4]).shape == (4, 1, 28, 28)
    # the paper's networks: 1024 units after G's input and after D's convs, where Q reads
    assert gan.generator.fc[0].out_features == 1024 and gan.discriminator.class_head.in_features == 1024
    logits, q = gan.discriminator(gan.generate(z[:4], code[:4]), None, with_classes=True)
    assert logits.shape == (4,) and q.shape == (4, 12)
    assert gan.condition(code) is None  # D is told nothing: the codes are G's to use and Q's to find
    images, labels, codes = gan.evaluation_samples(8, 3, torch.Generator().manual_seed(0))
    assert images.shape == (3, 1, 28, 28) and labels is None  # a code is not a label
    assert codes.tolist() == [8, 9, 0]  # every code equally often, matched to digits by the metrics
    # the grid: one row per categorical code, the continuous codes at 0
    assert gan.fixed_code[:, :10].argmax(1).tolist() == [c for c in range(10) for _ in range(8)]
    assert not gan.fixed_code[:, 10:].any()


def test_the_information_loss_is_the_codes_cross_entropy_and_squared_error():
    gan = _infogan("model.continuous_weight=0.5", "model.info_weight=2")
    code = torch.tensor([[0.0] * 9 + [1.0] + [0.5, -0.5]])
    q = torch.tensor([[0.0] * 10 + [0.5, 0.5]])
    loss, parts = gan.information_loss(q, code)
    assert parts["categorical"] == pytest.approx(np.log(10), rel=1e-5)  # uniform logits over 10 codes
    assert parts["continuous"] == pytest.approx(0.5)  # 0.5 * ((0.5 - 0.5)^2 + (0.5 + 0.5)^2)
    assert loss == pytest.approx(2 * (np.log(10) + 0.5 * 0.5), rel=1e-5)


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """A short real run of InfoGAN through the real config (the paper's networks and learning rates): 60 batches."""
    run = tmp_path_factory.mktemp("infogan")
    metrics = train(compose_run(run, "model=infogan", "trainer.limit_train_batches=60", "seed=0"))
    return run, metrics


def test_q_recovers_the_codes_of_gs_own_samples_after_a_short_run(short_run):
    run, metrics = short_run
    assert {"train/q_categorical_loss", "train/info_loss", "val/fid"} <= metrics.keys()
    assert "val/label_accuracy" not in metrics  # its samples are asked for no label
    # which code draws which digit, read at every validation; a real image has no code to match
    assert 0.1 <= metrics["val/code_accuracy"] <= 1 and "val/real_code_accuracy" not in metrics
    checkpoint = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert checkpoint["variant"] == "infogan"
    assert checkpoint["codes"] == {"categorical": 10, "continuous": 2, "noise": "uniform"}
    gan = _infogan()
    gan.load_state_dict(checkpoint["state_dict"])
    gan.eval()
    with torch.no_grad():
        z, code = gan.draw_latent(1000, torch.Generator().manual_seed(1))
        _, q = gan.discriminator(gan.generate(z, code), None, with_classes=True)
    accuracy = (q[:, :10].argmax(1) == code[:, :10].argmax(1)).float().mean()
    correlations = [np.corrcoef(q[:, i].numpy(), code[:, i].numpy())[0, 1] for i in (10, 11)]
    assert accuracy > 0.5  # chance: 0.1 (its standard error over 1,000 samples: 0.01)
    assert all(c > 0.3 for c in correlations)  # Q's readings follow the continuous codes


def test_sampling_takes_a_code_and_continuous_codes_and_keeps_the_noise_of_the_seed(short_run):
    run, _ = short_run
    g = load_generator(str(run / "checkpoints" / "last.ckpt"))
    assert (g.name, g.noise_dim, g.num_classes, g.continuous) == ("InfoGAN", 62, 10, 2)
    base = g.sample(20, seed=3, code=4, continuous=(0.0, 0.0))
    # the same seed, the same noise: built by hand from the seed's noise, the images are the same
    from gan_lightning.sampling import latent

    by_hand = g.images(latent.noise(3, 62, 20), torch.full((20,), 4), torch.zeros(20, 2))
    np.testing.assert_array_equal(base, by_hand)
    assert not np.array_equal(base, g.sample(20, seed=3, code=5, continuous=(0.0, 0.0)))
    assert not np.array_equal(base, g.sample(20, seed=3, code=4, continuous=(2.0, -2.0)))  # beyond [-1, 1]: allowed
    every = g.sample(20, seed=3)  # every code in turn, continuous codes drawn per sample
    np.testing.assert_array_equal(every, g.sample(20, seed=3, batch_size=7))  # whatever the batch size
    for bad, message in [({"digit": 3}, "an InfoGAN's categorical codes are not digits .* ask for code=3"),
                         ({"code": 10}, "code must be 'all' or a code from 0 to 9"),
                         ({"continuous": (3.0, 0.0)}, "continuous must be 2 numbers from -2 to 2"),
                         ({"continuous": (1.0,)}, "continuous must be 2 numbers")]:
        with pytest.raises(UserError, match=message):
            g.sample(4, seed=0, **bad)
    # an export keeps the codes, and draws the same
    folder = g.save_pretrained(run / "export")
    assert json.loads((folder / "config.json").read_text())["codes"]["categorical"] == 10
    np.testing.assert_array_equal(load_generator(str(folder)).sample(6, seed=1), g.sample(6, seed=1))


def test_generate_draws_the_papers_figure_and_refuses_a_digit(short_run, tmp_path, capsys):
    run, _ = short_run
    ckpt = run / "checkpoints" / "last.ckpt"
    generate_main([f"ckpt_path={ckpt}", "mode=codes", "frames=7", "code_index=1", f"out={tmp_path / 'codes'}"])
    figure = np.load(tmp_path / "codes" / "codes.npz")["frames"]
    assert figure.shape == (7, 10, 28, 28)  # 7 steps of continuous code 1, the 10 categorical codes each
    assert Image.open(tmp_path / "codes" / "codes.png").size == (7 * 30 + 2, 10 * 30 + 2)  # codes in rows
    assert Image.open(tmp_path / "codes" / "codes.gif").n_frames == 7
    generate_main([f"ckpt_path={ckpt}", "code=2", "continuous=[0.5,-1]", "n=5", f"out={tmp_path / 'twos'}"])
    data = np.load(tmp_path / "twos" / "samples.npz")
    assert data["labels"].tolist() == [2] * 5
    g = load_generator(str(ckpt))
    np.testing.assert_array_equal(data["images"], g.sample(5, seed=0, code=2, continuous=(0.5, -1.0)))
    with pytest.raises(SystemExit) as stop:
        generate_main([f"ckpt_path={ckpt}", "digit=7", f"out={tmp_path / 'no'}"])
    assert stop.value.code == 2 and "ask for code=7" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()


def test_evaluate_reports_what_the_codes_found(short_run, tmp_path, capsys):
    run, _ = short_run
    evaluate_main([f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", "n=300", f"out={tmp_path / 'eval.json'}"])
    report = json.loads((tmp_path / "eval.json").read_text())
    codes = report["codes"]
    assert 0.1 <= codes["code_accuracy"] <= 1 and sorted(codes["code_digits"]) == list(range(10))
    assert len(codes["continuous"]) == 2 and all(-1 <= c["slant"] <= 1 for c in codes["continuous"])
    assert "label_accuracy" not in report["model"]  # a code is not a label
    assert "code-to-digit accuracy" in capsys.readouterr().out


def test_code_to_digit_accuracy_matches_codes_to_digits_one_to_one():
    codes = np.repeat(np.arange(10), 10)
    digits = (codes + 3) % 10  # every code draws one digit, another than its number
    assert code_to_digit_accuracy(codes, digits, 10) == (1.0, [(c + 3) % 10 for c in range(10)])
    digits[:10] = 4  # code 0 draws the 4s of code 1 too: only one of them can have digit 4
    accuracy, mapping = code_to_digit_accuracy(codes, digits, 10)
    assert accuracy == pytest.approx(0.9) and len(set(mapping)) == 10
    # more codes than digits (model.categorical=12): two codes are left unmatched, their samples count as wrong
    codes = np.repeat(np.arange(12), 10)
    accuracy, mapping = code_to_digit_accuracy(codes, codes % 10, 12)
    assert accuracy == pytest.approx(100 / 120) and sorted(mapping) == [-1, -1, *range(10)]


def _bar(angle_pixels: int, thickness: int) -> np.ndarray:
    """A vertical bar of ink, its top moved right by `angle_pixels`, `thickness` pixels wide."""
    image = np.zeros((28, 28), dtype=np.uint8)
    for y in range(4, 24):
        x = 14 + round(angle_pixels * (14 - y) / 10)
        image[y, x : x + thickness] = 255
    return image


def test_slant_and_width_measure_a_leaning_and_a_thick_digit():
    angles, widths = ink_moments(np.stack([_bar(0, 2), _bar(4, 2), _bar(-4, 2), _bar(0, 6)]))
    assert abs(angles[0]) < 3 and angles[1] > 10 and angles[2] < -10  # the top leaning right: positive
    assert widths[3] > 2 * widths[0]
    sweeps = np.stack([[_bar(a, 2) for a in range(-4, 5)], [_bar(0, t) for t in range(1, 10)]])  # (2 styles, 9)
    result = code_correlations(sweeps[:1], np.arange(9))
    assert result["slant"] == pytest.approx(1.0)
    assert code_correlations(sweeps[1:], np.arange(9))["width"] == pytest.approx(1.0)

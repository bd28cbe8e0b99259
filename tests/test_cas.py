"""Classification Accuracy Score: train on generated digits, test on real ones."""

import json

import pytest
import torch

from gan_lightning.data.datasets import load_mnist
from gan_lightning.evaluate import main
from gan_lightning.metrics.cas import classification_accuracy_score
from gan_lightning.metrics.quality import draw

N, EPOCHS = 2000, 2  # a classifier in seconds (about 0.93 test accuracy on real digits)


def _real(n: int, seed: int):
    images, labels = load_mnist("train")
    images, labels = draw(images, labels, n, seed)
    return images.numpy(), labels.numpy()


@pytest.mark.slow
def test_real_digits_as_generated_ones_score_what_real_training_scores():
    # the same images, labels, seed and recipe on both sides: the same classifier
    result = classification_accuracy_score(_real, N, EPOCHS)
    assert result["cas"] == result["real_accuracy"]
    assert result["real_accuracy"] > 0.85
    assert {"n": N, "epochs": EPOCHS, "seed": 0}.items() <= result.items()


def test_digits_drawn_as_another_digit_score_near_zero():
    def wrong(n, seed):  # every digit labelled as the next one: a conditional GAN that never draws what it is asked
        images, labels = _real(n, seed)
        return images, (labels + 1) % 10

    result = classification_accuracy_score(wrong, N, EPOCHS, real=False)
    assert result["cas"] < 0.05 and "real_accuracy" not in result


@pytest.mark.slow
def test_one_style_per_digit_scores_below_real_training():
    # a collapsed generator: one image per digit, repeated; the real baseline sees the variety
    def collapsed(n, seed):
        images, labels = _real(n, seed)
        firsts = torch.stack([torch.from_numpy(images[(labels == d).nonzero()[0][0]]) for d in range(10)])
        return firsts[torch.arange(n) % 10].numpy(), (torch.arange(n) % 10).numpy()

    result = classification_accuracy_score(collapsed, N, EPOCHS)
    assert result["cas"] < result["real_accuracy"] - 0.05


@pytest.mark.slow
def test_evaluate_cas_reports_both_accuracies(trained_run, capsys, tmp_path):
    ckpt = trained_run("cgan") / "checkpoints" / "last.ckpt"
    main([f"ckpt_path={ckpt}", "n=50", f"out={tmp_path / 'report.json'}", "cas=true", f"cas_n={N}",
          f"cas_epochs={EPOCHS}"])
    cas = json.loads((tmp_path / "report.json").read_text())["cas"]
    assert cas["n"] == N and cas["epochs"] == EPOCHS
    assert 0 <= cas["cas"] <= 1 and cas["real_accuracy"] > 0.85
    assert cas["cas"] < cas["real_accuracy"]  # three training batches draw poor digits
    assert "Classification Accuracy Score" in capsys.readouterr().out

"""The bundled MNIST classifier and the quality metrics built on it."""

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from gan_lightning.data.datasets import load_mnist
from gan_lightning.data.scaling import to_model_range
from gan_lightning.errors import UserError
from gan_lightning.metrics import (
    FrozenClassifier,
    GANQuality,
    classifier_score,
    evaluate_images,
    load_classifier,
    reference_row,
)
from gan_lightning.metrics.classifier import WEIGHTS_PATH, record_path
from gan_lightning.metrics.quality import label_accuracy
from gan_lightning.metrics.train_classifier import accuracy, train_classifier

REPO_ROOT = Path(__file__).resolve().parents[1]
REQUIRED_TEST_ACCURACY = 0.993


@pytest.fixture(scope="module")
def test_set() -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = load_mnist("test")
    return to_model_range(images), labels  # (10000, 1, 28, 28) in [-1, 1], (10000,)


@pytest.fixture(scope="module")
def test_set_scores(test_set) -> dict:
    return evaluate_images(*test_set)


# --- the bundled classifier ---


def test_shipped_weights_are_small_and_match_their_record():
    record = json.loads(record_path(WEIGHTS_PATH).read_text())
    assert WEIGHTS_PATH.stat().st_size < 5 * 2**20
    assert hashlib.sha256(WEIGHTS_PATH.read_bytes()).hexdigest() == record["sha256"]
    assert record["test_accuracy"] >= REQUIRED_TEST_ACCURACY
    assert {"seed", "epochs", "command", "torch_version", "date"} <= record.keys()


def test_shipped_classifier_accuracy_on_full_test_set(test_set):
    assert accuracy(load_classifier(), *test_set) >= REQUIRED_TEST_ACCURACY


def test_corrupt_or_missing_weights_are_user_errors(tmp_path):
    raw = bytearray(WEIGHTS_PATH.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(raw)
    record_path(corrupt).write_text(record_path(WEIGHTS_PATH).read_text())
    with pytest.raises(UserError, match="corrupt"):
        load_classifier(corrupt)
    with pytest.raises(UserError, match="cannot read"):
        load_classifier(tmp_path / "missing.pt")


def test_frozen_classifier_stays_frozen_inside_a_training_parent():
    frozen = FrozenClassifier(load_classifier())
    parent = nn.ModuleDict({"trainable": nn.Linear(2, 2), "judge": frozen})
    parent.train()
    assert parent["trainable"].training
    assert not any(module.training for module in frozen.modules())
    assert list(parent.parameters()) == list(parent["trainable"].parameters())
    assert all(key.startswith("trainable.") for key in parent.state_dict())

    x = (torch.rand(8, 1, 28, 28) * 2 - 1).requires_grad_()
    features = frozen(x)
    assert frozen.num_features == 128
    assert features.shape == (8, frozen.num_features)
    assert not features.requires_grad
    # Eval mode for real: BatchNorm uses running statistics, so an image's features don't depend on its batch.
    torch.testing.assert_close(frozen(x[:1]), features[:1], atol=1e-5, rtol=1e-4)


# --- metric building blocks ---


def test_classifier_score_extremes():
    confident_balanced = torch.eye(10).repeat(3, 1)  # (30, 10)
    assert classifier_score(confident_balanced) == pytest.approx(10)
    assert classifier_score(torch.full((30, 10), 0.1)) == pytest.approx(1)
    confident_one_digit = torch.eye(10)[[3] * 30]
    assert classifier_score(confident_one_digit) == pytest.approx(1)


def test_label_accuracy_per_class():
    predictions = torch.tensor([0, 0, 1, 2, 2])
    requested = torch.tensor([0, 1, 1, 2, 2])
    overall, per_class = label_accuracy(predictions, requested, num_classes=4)
    assert overall == pytest.approx(0.8)
    assert per_class[:3] == pytest.approx([1.0, 0.5, 1.0])
    assert math.isnan(per_class[3])


# --- the metrics on real and broken images ---


@pytest.mark.slow
def test_real_test_images_with_true_labels(test_set, test_set_scores):
    _, labels = test_set
    scores = test_set_scores
    assert scores["num_samples"] == 10_000
    assert scores["label_accuracy"] >= 0.99
    assert min(scores["label_accuracy_per_class"]) >= 0.97
    true_share = torch.bincount(labels, minlength=10).double() / len(labels)
    torch.testing.assert_close(torch.tensor(scores["class_share"]).double(), true_share, atol=0.005, rtol=0)
    assert scores["min_class_share"] == pytest.approx(true_share.min().item(), abs=0.005)
    assert scores["class_entropy"] == pytest.approx(math.log(10), abs=0.01)
    assert scores["classifier_score"] > 9
    assert scores["confidence"] > 0.97


def test_shuffled_labels_score_chance(test_set):
    images, labels = test_set
    shuffled = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))]
    scores = evaluate_images(images[:2000], shuffled[:2000])
    assert 0.07 < scores["label_accuracy"] < 0.13


def test_codes_are_matched_to_digits_after_the_fact(test_set):
    """An InfoGAN's codes: real digits given codes that permute their labels score as well matched as the labels
    themselves; codes that say nothing of the digit score about chance (the best matching of noise, a little above)."""
    images, labels = test_set[0][:2000], test_set[1][:2000]
    quality = GANQuality()
    quality.update(images, codes=(labels + 3) % 10)
    matched = quality.compute()
    assert matched["code_accuracy"] >= 0.99 and "label_accuracy" not in matched
    quality.reset()
    quality.update(images, codes=torch.arange(2000) % 10)
    assert 0.09 < quality.compute()["code_accuracy"] < 0.16


def test_one_repeated_image_is_collapse(test_set):
    images, _ = test_set
    scores = evaluate_images(images[:1].repeat(200, 1, 1, 1))
    assert "label_accuracy" not in scores
    assert scores["classifier_score"] == pytest.approx(1, abs=1e-6)
    assert scores["min_class_share"] == 0
    assert max(scores["class_share"]) == 1


def test_fid_and_kid_separate_real_from_noise():
    real = reference_row(2000, seed=0)
    noise = evaluate_images(torch.rand(2000, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    assert real["fid"] < 10
    assert noise["fid"] > 50 * real["fid"]
    assert abs(real["kid_mean"]) < 0.05 * noise["kid_mean"]
    assert noise["classifier_score"] < real["classifier_score"]


def test_kid_with_fewer_samples_than_its_subset_size(test_set):
    images, _ = test_set
    scores = evaluate_images(images[:50])
    assert scores["num_samples"] == 50
    assert math.isfinite(scores["kid_mean"]) and math.isfinite(scores["kid_std"])


def test_reference_row_rejects_impossible_sizes():
    with pytest.raises(UserError, match="reference row"):
        reference_row(10_001)


def test_gan_quality_accumulates_batches_and_keeps_real_features(test_set):
    images, labels = test_set
    images, labels = images[:600], labels[:600]
    quality = GANQuality(batch_size=256)
    quality.train()
    assert not quality.classifier.training
    assert quality.state_dict() == {}
    with pytest.raises(ValueError, match="shape"):
        quality.update(images[:, :, :27])
    quality.update(images[:350], labels[:350])
    quality.update(images[350:], labels[350:])
    accumulated = quality.compute()
    quality.reset()
    assert int(quality.fid.real_features_num_samples) == 10_000  # the test set stays featurized
    assert int(quality.fid.fake_features_num_samples) == 0
    quality.update(images, labels)
    at_once = quality.compute()
    evaluated = evaluate_images(images, labels)
    for key in ("num_samples", "fid", "kid_mean", "kid_std", "classifier_score", "min_class_share", "label_accuracy"):
        assert accumulated[key] == pytest.approx(at_once[key], rel=1e-4, abs=1e-6), key
        assert evaluated[key] == pytest.approx(at_once[key], rel=1e-4, abs=1e-6), key


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gan_quality_on_cuda(test_set):
    images, labels = test_set
    quality = GANQuality().cuda()
    quality.update(images[:500].cuda(), labels[:500].cuda())
    on_cuda = quality.compute()
    on_cpu = evaluate_images(images[:500], labels[:500])
    for key in ("fid", "classifier_score", "label_accuracy", "min_class_share"):
        assert on_cuda[key] == pytest.approx(on_cpu[key], rel=1e-3, abs=1e-4), key


# --- training ---


@pytest.mark.slow
def test_classifier_training_is_reproducible_from_its_seed(tmp_path):
    def weights(seed, folder):
        out = tmp_path / folder / "classifier.pt"  # (the file name is inside torch.save's archive)
        record = train_classifier(epochs=1, seed=seed, out_path=out, train_size=512, log=lambda *_: None)
        return record["sha256"], record["test_accuracy"]

    first = weights(0, "a")
    assert weights(0, "b") == first  # same seed: the same bytes, the same accuracy
    assert weights(1, "c")[0] != first[0]


@pytest.mark.slow
def test_train_classifier_script_writes_loadable_weights(tmp_path):
    out = tmp_path / "tiny.pt"
    command = [sys.executable, "scripts/train_classifier.py", "--epochs", "1", "--train-size", "256", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True)
    assert "test accuracy" in done.stdout
    record = json.loads(record_path(out).read_text())
    assert record["epochs"] == 1 and record["seed"] == 0
    assert "--train-size 256" in record["command"]
    assert isinstance(load_classifier(out), nn.Module)

    bad = subprocess.run([*command[:3], "0"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == ["error: epochs must be at least 1, got 0"]


# --- fidelity and diversity apart: precision, recall, density, coverage; FID per digit ---


def test_prdc_matches_the_authors_package_on_classifier_features(test_set):
    prdc_reference = pytest.importorskip("prdc", reason="the authors' package: pip install prdc (dev extra)")
    from gan_lightning.metrics.prdc import prdc

    images, _ = test_set
    classifier = FrozenClassifier(load_classifier())
    real = classifier(images[:1500])  # (1500, 128)
    noise = 0.25 * torch.randn(600, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    fake = classifier(torch.cat([images[1500:2100], (images[2100:2700] + noise).clamp(-1, 1)]))  # half spoilt
    ours = prdc(real, fake, block=256)
    theirs_pr = prdc_reference.compute_prdc(real.numpy(), fake.numpy(), nearest_k=3)
    theirs_dc = prdc_reference.compute_prdc(real.numpy(), fake.numpy(), nearest_k=5)
    for key, theirs in [("precision", theirs_pr), ("recall", theirs_pr), ("density", theirs_dc), ("coverage", theirs_dc)]:
        assert ours[key] == pytest.approx(float(theirs[key]), abs=1e-9), key
    assert 0.05 < ours["precision"] < 0.95 and 0.05 < ours["recall"] < 0.95  # a case with something to get wrong


def test_real_images_score_high_precision_and_recall(test_set_scores):
    scores = reference_row(2000)  # held-out training images against the 10,000 test images
    assert scores["precision"] > 0.8 and scores["recall"] > 0.8
    assert 0.8 < scores["density"] < 1.2
    assert scores["coverage"] > 0.5  # 2,000 images reach only some of the 10,000 test images' small balls
    assert max(scores["fid_per_class"]) < 25  # about 200 images a digit: FID's small-sample bias, not a flaw


def test_one_digit_drawn_well_is_precise_but_covers_little(test_set):
    images, labels = test_set
    ones = images[labels == 1][:1000]
    scores = evaluate_images(ones)
    assert scores["precision"] > 0.8
    assert scores["recall"] < 0.3 and scores["coverage"] < 0.3
    per_digit = scores["fid_per_class"]  # read by the classifier: nearly all are ones
    assert per_digit[1] < 5 and sum(not math.isnan(v) for v in per_digit) <= 3


def test_noise_has_no_precision():
    noise = torch.rand(500, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    scores = evaluate_images(noise)
    assert scores["precision"] < 0.02 and scores["density"] < 0.02 and scores["coverage"] < 0.02


@pytest.mark.slow
def test_fid_per_class_uses_the_digit_asked_for_and_fid_formula_matches_torchmetrics(test_set):
    from gan_lightning.metrics.per_digit import frechet_distance

    images, labels = test_set
    classifier = FrozenClassifier(load_classifier())
    a, b = classifier(images[:3000]), classifier(images[3000:6000])
    quality = GANQuality()
    quality.fid.update(images[:3000], real=True)
    quality.fid.update(images[3000:6000], real=False)
    assert frechet_distance(a, b) == pytest.approx(quality.fid.compute().item(), rel=1e-4)
    # sevens labelled as threes: the FID of "3" compares sevens with real threes, far above a real digit's
    sevens = images[labels == 7][:600]
    scores = evaluate_images(sevens, torch.full((len(sevens),), 3))
    assert scores["label_accuracy"] < 0.05
    assert scores["fid_per_class"][3] > 50 and all(math.isnan(v) for i, v in enumerate(scores["fid_per_class"]) if i != 3)


def test_prdc_is_left_out_below_k_samples(test_set):
    images, _ = test_set
    scores = evaluate_images(images[:4])
    assert "precision" not in scores and "fid" in scores

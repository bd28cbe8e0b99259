"""The evaluation protocol: what a run selects by is scored on the validation split, the test set only reports."""

import pytest
import torch

from gan_lightning.data import IDXDataset, ImageDataModule
from gan_lightning.data.scaling import to_model_range
from gan_lightning.metrics import GANQuality, reference_row
from gan_lightning.train import train
from tests.conftest import compose_run, validation_real_row


def test_training_scores_against_the_validation_split_and_never_reads_the_test_set(tmp_path, monkeypatch):
    splits = []
    real_load = IDXDataset.load
    monkeypatch.setattr(IDXDataset, "load", lambda self, split: splits.append(split) or real_load(self, split))
    final = train(compose_run(tmp_path, "model=vanilla", "~callbacks.sample_grid"))
    assert splits and set(splits) == {"train"}

    real = validation_real_row(200)  # FAST's eval_samples
    assert final["val/real_fid"] == pytest.approx(real["fid"], rel=1e-3)
    assert final["val/real_precision"] == pytest.approx(real["precision"], rel=1e-6)
    # not the test-set numbers of evaluate.py
    assert final["val/real_fid"] != pytest.approx(reference_row(200)["fid"], rel=1e-2)


def test_a_reference_set_against_itself_scores_perfectly():
    dm = ImageDataModule(val_size=1000)
    dm.setup()
    quality = GANQuality()
    quality.use_reference(dm.val_set.images, dm.val_set.labels)
    quality.update(to_model_range(dm.val_set.images), dm.val_set.labels)
    scores = quality.compute()
    assert scores["fid"] == pytest.approx(0, abs=1e-3)
    assert scores["precision"] == scores["recall"] == scores["coverage"] == 1
    assert scores["label_accuracy"] > 0.99


def test_the_reference_must_be_set_before_it_is_featurized():
    quality = GANQuality()
    images = torch.zeros(10, 28, 28, dtype=torch.uint8)
    quality.update(to_model_range(images))
    quality.compute()  # featurizes the test set
    with pytest.raises(AssertionError, match="featurized already"):
        quality.use_reference(images, torch.zeros(10, dtype=torch.int64))

"""Fashion-MNIST, the second dataset: its real files (../shared/fashion-mnist beside the repository, the Debian
package's bytes), its own feature network, and a real training run on it.

The files are not in the repository. Without them these tests skip with the reason, except under CI
(`GAN_LIGHTNING_REQUIRE_FASHION=1` in .ci/run), where a missing copy fails them."""

import gzip
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch

from gan_lightning import load_generator
from gan_lightning.config import compose_config
from gan_lightning.data import ImageDataModule, get_dataset
from gan_lightning.data.datasets import FASHION_MNIST, MNIST
from gan_lightning.data.scaling import to_model_range
from gan_lightning.errors import UserError
from gan_lightning.metrics.classifier import load_classifier, record_path
from gan_lightning.metrics.quality import GANQuality
from gan_lightning.metrics.train_classifier import accuracy
from gan_lightning.pretrained import BUNDLED_DIR
from tests.conftest import FAST, ROOT

# the classic small CNNs reach 92-94% on Fashion-MNIST's test set
REQUIRED_TEST_ACCURACY = 0.92


@pytest.mark.parametrize("split, count", [("train", 6000), ("test", 1000)])
def test_the_files_are_the_real_thing(fashion_dir, split, count):
    images, labels = FASHION_MNIST.at(fashion_dir).load(split)
    assert images.dtype == torch.uint8 and images.shape == (10 * count, 28, 28)
    assert labels.bincount().tolist() == [count] * 10
    assert FASHION_MNIST.class_names[7] == "Sneaker" and FASHION_MNIST.num_classes == 10


def test_missing_files_say_the_three_ways_to_get_them(tmp_path):
    with pytest.raises(UserError) as error:
        FASHION_MNIST.at(tmp_path).load("train")
    message = str(error.value)
    assert f"not found in {tmp_path}" in message and "\n" not in message
    for way in ("data.data_dir", "data.download=true", "apt install dataset-fashion-mnist"):
        assert way in message


def test_a_corrupt_file_is_named(fashion_dir, tmp_path):
    for name in FASHION_MNIST.md5:
        shutil.copy(fashion_dir / f"{name}.gz", tmp_path / f"{name}.gz")
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(gzip.decompress(path.read_bytes()))
    data[100] = (data[100] + 1) % 10  # one wrong label
    path.write_bytes(gzip.compress(bytes(data)))
    with pytest.raises(UserError, match="Fashion-MNIST file .*t10k-labels-idx1-ubyte.gz is corrupt"):
        FASHION_MNIST.at(tmp_path).load("test")


def test_download_goes_through_torchvision_up_to_the_network(tmp_path, monkeypatch):
    """data.download=true runs torchvision's real FashionMNIST download; the one call that would leave the machine
    is refused here, as no machine of the project has internet, and the run says so in one line."""
    asked = []

    def no_network(request, *args, **kwargs):
        asked.append(request.full_url if hasattr(request, "full_url") else str(request))
        raise urllib.error.URLError("no network here")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    dm = ImageDataModule("fashion_mnist", data_dir=str(tmp_path), download=True)
    with pytest.raises(UserError) as error:
        dm.prepare_data()
    assert str(error.value).startswith(f"data.download=true: could not download Fashion-MNIST into {tmp_path} (")
    assert asked and all("train-images-idx3-ubyte" in url for url in asked)  # the first file, from each mirror
    assert (tmp_path / "FashionMNIST" / "raw").is_dir()  # torchvision's own layout, which the loader reads


def test_its_classifier_is_its_own_and_reaches_the_classic_accuracy(fashion_dir):
    """Fashion samples are never judged by the digit network: the dataset names its own, which ships checksummed
    with the record of its training."""
    assert FASHION_MNIST.classifier_path != MNIST.classifier_path
    record = json.loads(record_path(FASHION_MNIST.classifier_path).read_text())
    assert record["dataset"] == "fashion_mnist" and record["test_accuracy"] >= REQUIRED_TEST_ACCURACY
    images, labels = FASHION_MNIST.at(fashion_dir).load("test")
    measured = accuracy(load_classifier(FASHION_MNIST.classifier_path), to_model_range(images), labels)
    assert measured == pytest.approx(record["test_accuracy"], abs=1e-4)
    # the digit network reads clothes as badly as one expects of it
    assert accuracy(load_classifier(), to_model_range(images[:2000]), labels[:2000]) < 0.5
    quality = GANQuality(dataset=FASHION_MNIST)
    weights = load_classifier(FASHION_MNIST.classifier_path).state_dict()
    assert torch.equal(quality.classifier.classifier.head[-1].weight, weights["head.1.weight"])


def test_the_real_row_of_fashion_images_is_near_perfect_and_digits_are_not(fashion_dir):
    """Held-out training images against the test set, in the Fashion network's feature space: what a perfect
    generator scores; MNIST's digits scored as Fashion samples are as far from it as can be."""
    from gan_lightning.metrics.quality import evaluate_images, reference_row

    fashion = FASHION_MNIST.at(fashion_dir)
    row = reference_row(1000, dataset=fashion)
    assert row["label_accuracy"] > 0.9 and row["precision"] > 0.8 and row["recall"] > 0.8
    assert row["min_class_share"] > 0.07 and row["fid"] < 3
    digits, _ = MNIST.load("test")
    wrong = evaluate_images(to_model_range(digits[:1000]), dataset=fashion)
    assert wrong["fid"] > 100 and wrong["recall"] < 0.05 and wrong["precision"] < 0.3


def test_a_cgan_trains_on_fashion_and_the_tools_follow_its_dataset(fashion_dir, tmp_path):
    """`python scripts/train.py model=cgan data=fashion_mnist` on real batches: its validation metrics are scored by
    the Fashion network against the Fashion validation split, its checkpoint records the dataset, and evaluate.py
    scores it against the Fashion test set."""
    run = tmp_path / "run"
    command = [sys.executable, str(ROOT / "scripts" / "train.py"), "model=cgan", "data=fashion_mnist",
               f"data.data_dir={fashion_dir}", *FAST, f"hydra.run.dir={run}"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    final = metrics.get("final", metrics)
    assert "val/fid" in json.dumps(final)
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["dataset"] == "fashion_mnist" and checkpoint["hyper_parameters"]["dataset"] == "fashion_mnist"

    from gan_lightning.evaluate import evaluate_report
    from gan_lightning.metrics.quality import reference_row
    from gan_lightning.sampling.sampler import Sampler

    sampler = Sampler.load(run / "checkpoints" / "last.ckpt")
    assert sampler.dataset == get_dataset("fashion_mnist")
    sampler.dataset = sampler.dataset.at(fashion_dir)
    report = evaluate_report(sampler, 200, seed=0)
    assert report["real_reference"]["fid"] == pytest.approx(reference_row(200, dataset=sampler.dataset)["fid"])
    assert report["real_reference"]["fid"] < report["model"]["fid"]
    # the command line finds the files through data_dir, and without it says where it looked
    evaluate = [sys.executable, str(ROOT / "scripts" / "evaluate.py"), f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
                "n=200", f"out={tmp_path / 'eval.json'}"]
    done = subprocess.run([*evaluate, f"data_dir={tmp_path / 'nowhere'}"], capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 2 and "Fashion-MNIST file" in done.stderr and not (tmp_path / "eval.json").exists()
    done = subprocess.run([*evaluate, f"data_dir={fashion_dir}"], capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((tmp_path / "eval.json").read_text())["real_reference"]["fid"] == pytest.approx(
        report["real_reference"]["fid"])
    # its classes by name: the API, generate.py and the demo's picker
    sneakers = sampler.sample(4, label="Sneaker", seed=0)
    assert (sneakers == sampler.sample(4, label=7, seed=0)).all() and (sneakers == sampler.sample(4, 7, seed=0)).all()
    with pytest.raises(UserError, match="'Sneakers' is not a class of Fashion-MNIST: give one of T-shirt/top, "):
        sampler.sample(4, label="Sneakers")
    assert sampler.class_word == "class" and sampler.class_choices()[7] == "Sneaker"
    assert "10 classes" in sampler.describe()
    generate = [sys.executable, str(ROOT / "scripts" / "generate.py"), f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
                "n=8"]
    done = subprocess.run([*generate, "label=sneaker", f"out={tmp_path / 'sneakers'}"], capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (np.load(tmp_path / "sneakers" / "samples.npz")["labels"] == 7).all()
    done = subprocess.run([*generate, "label=Sneaker", "digit=3", f"out={tmp_path / 'both'}"], capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 2 and "ask for the same thing" in done.stderr and not (tmp_path / "both").exists()

    # the demo's picker offers the class names and draws what is picked
    demo = pytest.importorskip("gan_lightning.demo")
    explorer = demo.Explorer({"fashion": sampler}, scale=1)
    one, every = explorer.samples("fashion", "Sneaker", 0, 4), explorer.samples("fashion", "all", 0, 4)
    assert one.dtype == every.dtype == np.uint8 and one.shape[0] < every.shape[0]  # "all": a row per class
    with pytest.raises(UserError, match="is not a class of Fashion-MNIST"):
        explorer.samples("fashion", "7x", 0, 4)


def test_the_bundled_fashion_cgans_recipe_is_one_experiment_config():
    """`experiment=fashion_cgan` is the training the bundled model's card gives as command-line overrides."""
    card = json.loads((BUNDLED_DIR / "fashion_cgan" / "eval.json").read_text())
    overrides = card["training"]["command"].removeprefix("python scripts/train.py ").split()
    assert "data=fashion_mnist" in overrides and "model=cgan" in overrides
    seed = next(o for o in overrides if o.startswith("seed="))
    # the card's commit predates the cGAN's default learning-rate decay: its training had constant rates
    as_card = compose_config([*overrides, "model.lr_decay_share=0"])
    as_experiment = compose_config(["experiment=fashion_cgan", seed])
    for group in ("model", "optimizer", "data", "seed"):
        assert as_experiment[group] == as_card[group], group
    assert as_experiment.trainer.max_epochs == as_card.trainer.max_epochs == card["training"]["run_epochs"]


def test_the_bundled_fashion_cgan_draws_the_class_asked_for_by_name_or_index():
    """`load_generator("fashion_cgan")`: a Sneaker asked for by name, or by its index 7, is what the Fashion
    classifier reads (the model card has the label accuracy over every class: 10,000 samples)."""
    g = load_generator("fashion_cgan")
    assert g.dataset is FASHION_MNIST and g.class_choices()[7] == "Sneaker"
    by_name = g.sample(100, label="Sneaker", seed=0)
    np.testing.assert_array_equal(by_name, g.sample(100, label=7, seed=0))
    classifier = load_classifier(FASHION_MNIST.classifier_path)
    assert accuracy(classifier, to_model_range(torch.from_numpy(by_name)), torch.full((100,), 7)) >= 0.9
    with pytest.raises(UserError, match="label='Sandals'.*Sneaker"):
        g.sample(4, label="Sandals")

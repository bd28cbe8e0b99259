"""Quality of generated images, all judged by the bundled classifier of their dataset (see classifier.py).

Every evaluation returns one flat dict:

    num_samples               images evaluated
    fid                       Fréchet distance to the reference set in classifier-feature space (lower is better)
    kid_mean, kid_std         kernel (polynomial MMD) distance to the reference set over random subsets (lower is
                              better)
    classifier_score          exp(E_x KL(p(y|x) || p(y))): the Inception Score with the dataset's classifier (for
                              MNIST, "the MNIST score"); 10 = every image confidently of one class and all classes
                              equally common, 1 = no information
    confidence                mean max-probability of the classifier
    class_share               list of 10 (one per class): fraction of images the classifier reads as each class
    min_class_share           smallest entry of class_share (mode-collapse signal; a balanced set has ~0.1)
    class_entropy             entropy of class_share in nats (ln 10 = 2.303 when perfectly balanced)
    label_accuracy            only with requested labels: share of images read as the class that was asked for
    label_accuracy_per_class  only with requested labels: list of 10 (NaN for a class never asked for)
    code_accuracy             only with categorical codes (InfoGAN): share of images read as their code's class under
                              the best one-to-one matching of codes to classes (`metrics.codes`)
    precision, recall         improved precision and recall (k = 3): the share of images inside the reference set's
                              feature manifold (fidelity), and of reference images inside theirs (diversity)
    density, coverage         (k = 5) how crowded the images are around real ones (~1 for real data), and the
                              share of reference images with an image near them (see prdc.py)
    fid_per_class             list of 10: FID of each class's images (the class asked for, or the classifier's
                              reading) against the reference images of that class (NaN for fewer than 2 images)

The reference set is the dataset's test set (`evaluate.py`, the benchmarks), or, during training, the validation
split the GAN never trains on (`GANQuality.use_reference`), so that nothing a run selects by is scored on the
test set. FID/KID depend on the sample count, so compare a model only with the real-data row of the same size
(`reference_row`, `real_row`). Both are on the scale of this classifier's features: not comparable with
Inception-based numbers from papers.
"""

import functools
import itertools
import math
import warnings

import torch
from torch import Tensor, nn
from torchmetrics import Metric
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance
from torchmetrics.utilities import dim_zero_cat

from gan_lightning.data.datasets import MNIST, IDXDataset
from gan_lightning.data.scaling import to_model_range
from gan_lightning.errors import UserError
from gan_lightning.metrics.classifier import FrozenClassifier, load_classifier
from gan_lightning.metrics.codes import code_to_digit_accuracy
from gan_lightning.metrics.per_digit import per_class_fid
from gan_lightning.metrics.prdc import DC_K, PR_K, knn_radii, prdc


def classifier_score(probs: Tensor) -> float:
    """exp(mean KL(p(y|x) || p(y))) for classifier probabilities (N, K), with p(y) their mean over the set."""
    probs = probs.double()
    marginal = probs.mean(0, keepdim=True)  # (1, K)
    kl = torch.special.xlogy(probs, probs) - torch.special.xlogy(probs, marginal)  # (N, K), 0 log 0 = 0
    return math.exp(kl.sum(1).mean().item())


def class_share(predictions: Tensor, num_classes: int) -> Tensor:
    """Fraction of predictions (N,) equal to each class -> (num_classes,)."""
    return torch.bincount(predictions, minlength=num_classes).double() / len(predictions)


def label_accuracy(predictions: Tensor, requested: Tensor, num_classes: int) -> tuple[float, list[float]]:
    """Share of predictions equal to the requested label: overall and per requested class (NaN where never asked)."""
    hits = (predictions == requested).double()  # (N,)
    asked = torch.bincount(requested, minlength=num_classes).double()  # (K,)
    hit_counts = torch.bincount(requested, weights=hits, minlength=num_classes)  # (K,)
    per_class = torch.where(asked > 0, hit_counts / asked.clamp(min=1), torch.nan)
    return hits.mean().item(), per_class.tolist()


def classifier_metrics(probs: Tensor, requested: Tensor | None = None, codes: Tensor | None = None) -> dict:
    """The classifier-only part of the dict (all keys but fid/kid) from probabilities (N, K), with the labels asked
    for (N,) or the categorical codes drawn (N,) where there are some."""
    num_classes = probs.shape[1]
    predictions = probs.argmax(1)  # (N,)
    share = class_share(predictions, num_classes)
    result = {
        "classifier_score": classifier_score(probs),
        "confidence": probs.max(1).values.double().mean().item(),
        "class_share": share.tolist(),
        "min_class_share": share.min().item(),
        "class_entropy": torch.special.entr(share).sum().item(),
    }
    if requested is not None:
        result["label_accuracy"], result["label_accuracy_per_class"] = label_accuracy(
            predictions, requested.to(predictions.device), num_classes
        )
    if codes is not None:
        result["code_accuracy"], _ = code_to_digit_accuracy(
            codes.cpu().numpy(), predictions.cpu().numpy(), int(codes.max()) + 1, num_classes)
    return result


class ClassifierOutputs(Metric):
    """Collects classifier probabilities and, for conditional models, the requested labels (for an InfoGAN, the
    categorical codes)."""

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("probs", default=[], dist_reduce_fx="cat")
        self.add_state("requested", default=[], dist_reduce_fx="cat")
        self.add_state("codes", default=[], dist_reduce_fx="cat")

    def update(self, probs: Tensor, requested: Tensor | None = None, codes: Tensor | None = None) -> None:
        self.probs.append(probs)
        if requested is not None:
            self.requested.append(requested)
        if codes is not None:
            self.codes.append(codes)

    def compute(self) -> tuple[Tensor, Tensor | None, Tensor | None]:
        probs = dim_zero_cat(self.probs)  # (N, K)
        return probs, self._given(self.requested, len(probs), "labels"), self._given(self.codes, len(probs), "codes")

    @staticmethod
    def _given(state: list | Tensor, n: int, what: str) -> Tensor | None:
        """A per-image state (N,), or None where none was given (an empty list, or an empty tensor once synced over
        DDP ranks)."""
        if (not state) if isinstance(state, list) else state.numel() == 0:
            return None
        values = dim_zero_cat(state)
        if len(values) != n:
            raise ValueError(f"{what} were given for some generated batches but not for others")
        return values


# k-NN radii of the reference feature sets met in this process, by a fingerprint of the set
_REFERENCE_RADII: dict[tuple, dict[int, Tensor]] = {}


def reference_radii(real: Tensor) -> dict[int, Tensor]:
    """The k-NN radii of a reference feature set (seconds for the 10,000 test images), computed once per process
    for the same set: every run in a process scores against the same test images."""
    key = (tuple(real.shape), str(real.device), real.double().sum().item(), real[::97].double().sum().item())
    if key not in _REFERENCE_RADII:
        _REFERENCE_RADII[key] = knn_radii(real, (PR_K, DC_K))
    return _REFERENCE_RADII[key]


class FeatureSets(Metric):
    """The classifier features of the real and the generated images, each with its class (true label; digit asked
    for, or the classifier's reading), for the metrics that need the sets themselves (k-NN, per-digit FID).
    `reset()` forgets the generated images only: the reference set stays, as FID's `reset_real_features=False`."""

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        for name in ("real_features", "real_classes", "fake_features", "fake_classes"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, features: Tensor, classes: Tensor, real: bool) -> None:
        getattr(self, "real_features" if real else "fake_features").append(features)
        getattr(self, "real_classes" if real else "fake_classes").append(classes)

    def compute(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return tuple(dim_zero_cat(getattr(self, name)) for name in
                     ("real_features", "real_classes", "fake_features", "fake_classes"))

    def reset(self) -> None:
        real = list(self.real_features), list(self.real_classes)  # reset() empties the lists in place
        super().reset()
        self.real_features, self.real_classes = real


class GANQuality(nn.Module):
    """Accumulates generated images batch by batch; `compute()` returns the quality dict (see module docstring).

    For a LightningModule's validation: `update(fake, labels)` in each step, `compute()` and `reset()` at the epoch
    end. The classifier is a frozen submodule (eval mode, no gradients, not in the state_dict) and moves with the
    parent to any device. The reference images (the MNIST test set, unless `use_reference` gave others) are
    featurized once, at the first `compute()`, and kept by `reset()`.
    """

    def __init__(
        self,
        kid_subset_size: int = 1000,
        kid_subsets: int = 100,
        kid_seed: int = 0,
        batch_size: int = 256,
        range_tolerance: float = 1e-3,
        classifier: FrozenClassifier | None = None,
        dataset: IDXDataset = MNIST,
    ) -> None:
        super().__init__()
        self.dataset = dataset
        self.range_tolerance = range_tolerance
        self.kid_subset_size = kid_subset_size
        self.kid_seed = kid_seed
        self.batch_size = batch_size
        self.classifier = classifier if classifier is not None else FrozenClassifier(load_classifier(dataset.classifier_path))
        judge = self.classifier.classifier
        if (judge.num_classes, judge.image_size) != (dataset.num_classes, dataset.image_size):
            raise UserError(f"the feature network {dataset.classifier_path} reads {judge.num_classes} classes of "
                            f"{judge.image_size}x{judge.image_size} images, {dataset.title} has {dataset.num_classes} "
                            f"of {dataset.image_size}x{dataset.image_size}: train one for it with "
                            "scripts/train_classifier.py")
        # normalize=False: a custom feature module gets the images exactly as passed, floats in [-1, 1].
        self.fid = FrechetInceptionDistance(feature=self.classifier, reset_real_features=False, normalize=False)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*will save all extracted features in buffer")
            self.kid = KernelInceptionDistance(
                feature=self.classifier,
                subsets=kid_subsets,
                subset_size=kid_subset_size,
                reset_real_features=False,
                normalize=False,
            )
        self.outputs = ClassifierOutputs()
        self.features = FeatureSets()
        self._real_radii: dict[int, Tensor] | None = None  # k-NN radii of the reference set, computed once
        self._reference: tuple[Tensor, Tensor] | None = None  # uint8 images and labels; None: the test set

    @property
    def device(self) -> torch.device:
        return self.fid.device

    def update(self, fake_images: Tensor, labels: Tensor | None = None, codes: Tensor | None = None) -> None:
        """Add generated images (B, 1, 28, 28) in [-1, 1] and, for conditional models, the labels asked for (B,);
        for an InfoGAN, the categorical codes they were drawn with (B,) instead."""
        shape = self.dataset.image_shape
        if fake_images.shape[1:] != shape or not fake_images.is_floating_point():
            raise ValueError(f"expected float images of shape (B, {', '.join(map(str, shape))}), got "
                             f"{tuple(fake_images.shape)}")
        if fake_images.numel() and fake_images.abs().max() > 1 + self.range_tolerance:
            raise ValueError("expected images in [-1, 1] (the Tanh range), got values outside it")
        if labels is not None and labels.shape != fake_images.shape[:1]:
            raise ValueError(f"expected labels of shape ({len(fake_images)},), got {tuple(labels.shape)}")
        if labels is not None and len(labels) and (labels.min() < 0 or labels.max() >= self.dataset.num_classes):
            raise ValueError(f"expected labels in 0..{self.dataset.num_classes - 1}")
        assert labels is None or codes is None, "a code is not a label"
        assert codes is None or codes.shape == fake_images.shape[:1], (codes.shape, fake_images.shape)
        label_batches = labels.split(self.batch_size) if labels is not None else itertools.repeat(None)
        code_batches = codes.split(self.batch_size) if codes is not None else itertools.repeat(None)
        for images, requested, code in zip(fake_images.detach().split(self.batch_size), label_batches, code_batches):
            images = images.to(self.device)  # (b, 1, 28, 28)
            with self.classifier.sharing_passes():
                self.fid.update(images, real=False)
                self.kid.update(images, real=False)
                probs = self.classifier.logits(images).softmax(1)  # (b, 10)
                features = self.classifier(images)  # (b, 128), the pass FID and KID made
            requested = None if requested is None else requested.to(self.device)
            self.outputs.update(probs, requested, None if code is None else code.to(self.device))
            self.features.update(features, probs.argmax(1) if requested is None else requested, real=False)

    def use_reference(self, images: Tensor, labels: Tensor) -> None:
        """Score against these real images (uint8 (N, 28, 28)) and their labels (N,) instead of the MNIST test set.
        Before the first `compute()`; under DDP every rank passes the whole set."""
        assert self.fid.real_features_num_samples == 0, "the reference set is featurized already"
        assert images.dtype == torch.uint8 and images.shape[1:] == self.dataset.image_shape[1:], images.shape
        assert len(images) == len(labels), (images.shape, labels.shape)
        self._reference = images, labels

    def _add_real_images(self) -> None:
        """Featurize the reference set once; both metrics keep these features across reset(). Under DDP each rank
        takes its share of it, so the states synced over ranks hold it exactly once."""
        images, labels = self._reference if self._reference is not None else self.dataset.load("test")
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
            images, labels = images[rank::world_size], labels[rank::world_size]
        for batch, batch_labels in zip(images.split(self.batch_size), labels.split(self.batch_size)):
            real = to_model_range(batch).to(self.device)  # (b, 1, 28, 28)
            with self.classifier.sharing_passes():
                self.fid.update(real, real=True)
                self.kid.update(real, real=True)
                self.features.update(self.classifier(real), batch_labels.to(self.device), real=True)

    def compute(self) -> dict:
        if self.fid.fake_features_num_samples < 2:
            raise ValueError("need at least 2 generated images to compute quality metrics")
        if self.fid.real_features_num_samples == 0:
            self._add_real_images()
        probs, requested, codes = self.outputs.compute()  # (N, 10), (N,) or None, (N,) or None
        num_samples = len(probs)
        # KID draws subsets of this size from both sets; it can't exceed either sample count.
        self.kid.subset_size = min(self.kid_subset_size, num_samples, int(self.fid.real_features_num_samples))
        with torch.random.fork_rng(devices=[]):  # KID's subsets use the CPU generator: seed it, leave global RNG be
            torch.manual_seed(self.kid_seed)
            kid_mean, kid_std = self.kid.compute()
        real, real_classes, fake, fake_classes = self.features.compute()
        result = {
            "num_samples": num_samples,
            "fid": self.fid.compute().item(),
            "kid_mean": kid_mean.item(),
            "kid_std": kid_std.item(),
            **classifier_metrics(probs, requested, codes),
            "fid_per_class": per_class_fid(real, real_classes, fake, fake_classes, self.dataset.num_classes),
        }
        if num_samples > max(PR_K, DC_K):  # k-NN balls need more than k images
            if self._real_radii is None:
                self._real_radii = reference_radii(real)
            result.update(prdc(real, fake, real_radii=self._real_radii))
        return result

    def score_real(self, images: Tensor, labels: Tensor | None = None) -> dict:
        """The metrics of real images (uint8 (n, 28, 28)) scored as if generated, `labels` as the digits asked for,
        against the reference in use: what a perfect generator scores at this n (under DDP, each rank gives its
        share). Generated images updated before are forgotten."""
        self.reset()
        self.update(to_model_range(images).to(self.device), None if labels is None else labels.to(self.device))
        result = self.compute()
        self.reset()
        return result

    def reset(self) -> None:
        """Forget the generated images (the real-image features stay)."""
        self.fid.reset()
        self.kid.reset()
        self.outputs.reset()
        self.features.reset()


@functools.cache
def _shared_quality(device: torch.device, dataset: IDXDataset) -> GANQuality:
    """One GANQuality per device, dataset and process, so the test-set features are computed only once."""
    return GANQuality(dataset=dataset).to(device)


def evaluate_images(images: Tensor, requested_labels: Tensor | None = None, dataset: IDXDataset = MNIST) -> dict:
    """The quality dict for generated images (N, C, H, W) in [-1, 1] of `dataset`, computed on their device, in
    batches."""
    quality = _shared_quality(images.device, dataset)
    quality.reset()
    quality.update(images, requested_labels)
    result = quality.compute()
    quality.reset()
    return result


def draw(images: Tensor, labels: Tensor, n: int, seed: int) -> tuple[Tensor, Tensor]:
    """A seeded draw of n of the images (N, ...) and their labels (N,), without replacement."""
    assert 0 < n <= len(labels), f"cannot draw {n} of {len(labels)} images"
    index = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))[:n]  # (n,)
    return images[index], labels[index]


def held_out_images(n: int, seed: int = 0, dataset: IDXDataset = MNIST) -> tuple[Tensor, Tensor]:
    """n real images the classifier never saw (a seeded draw from the held-out train split), uint8 (n, H, W),
    and their labels (n,)."""
    images, labels = dataset.load("train")
    start = dataset.held_out_start
    available = len(labels) - start
    if not 2 <= n <= available:
        raise UserError(f"the real-data reference row needs 2 to {available} images, got {n}")
    return draw(images[start:], labels[start:], n, seed)


def real_row(images: Tensor, labels: Tensor, reference: tuple[Tensor, Tensor] | None = None,
             device: str | torch.device = "cpu", dataset: IDXDataset = MNIST) -> dict:
    """The quality dict of real images (uint8 (n, H, W)) with their true labels asked for, against `reference`
    (uint8 images and labels; None: the dataset's test set): what a perfect generator of n samples scores."""
    if reference is not None:
        quality = GANQuality(dataset=dataset).to(device)
    else:
        quality = _shared_quality(torch.device(device), dataset)
    if reference is not None:
        quality.use_reference(*reference)
    return quality.score_real(images, labels)


def reference_row(n: int, seed: int = 0, device: str | torch.device = "cpu", dataset: IDXDataset = MNIST) -> dict:
    """The real-data row of `evaluate.py`: n held-out training images the classifier never saw, against the test
    set."""
    return real_row(*held_out_images(n, seed, dataset), device=device, dataset=dataset)

"""The quality metrics at every validation, for every variant: FID, KID, precision and recall, density and
coverage, the classifier score, the class balance and, for a variant whose samples are asked for a label, the label
accuracy (or, for one whose samples are drawn with categorical codes, the code accuracy); each beside its real-data
reference (`val/real_*`), scored once per run (a real image has no code: no `val/real_code_accuracy`)."""

import lightning as L

from gan_lightning.data.datasets import ImageDataset, get_dataset
from gan_lightning.metrics import GANQuality
from gan_lightning.metrics.quality import draw

# the quality metrics logged at every validation (label accuracy only where the samples were asked for labels)
LOGGED_QUALITY = ("fid", "kid_mean", "precision", "recall", "density", "coverage", "classifier_score",
                  "min_class_share", "label_accuracy", "code_accuracy")


class ValidationQuality(L.Callback):
    """At the end of every validation (not the sanity check), `eval_samples` samples of the module's sampling
    generator (`GAN.evaluation_samples`) are judged by the dataset's bundled classifier against the data module's validation
    split, real images the GAN never trains on (the test set stays for reporting), and logged as `val/<metric>`.
    The real-data row `val/real_<metric>` scores as many images of the training split (a seeded draw, `sample_seed`
    of the module) against the same split: what a perfect generator would score at this sample count.

    Under DDP each rank scores its share of the samples; the metric states are gathered over ranks in `compute()`,
    so every rank logs the same numbers."""

    def __init__(self, eval_samples: int = 2000, kid_subset_size: int = 1000, dataset: ImageDataset | str = "mnist"):
        assert eval_samples >= 2 and kid_subset_size >= 2, (eval_samples, kid_subset_size)  # checked in the config
        self.eval_samples = eval_samples
        # the dataset's own feature network judges the samples (made here, before the model: see train.py, which
        # passes the data module's dataset)
        dataset = get_dataset(dataset) if isinstance(dataset, str) else dataset
        assert dataset.classifier_path is not None, f"{dataset.title} has no feature network"
        self.quality = GANQuality(kid_subset_size=kid_subset_size, dataset=dataset)
        self._real_metrics: dict | None = None  # the real-data row, scored at the first validation

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        quality = self.quality.to(pl_module.device)
        world, rank = trainer.world_size, trainer.global_rank
        first, last = self.eval_samples * rank // world, self.eval_samples * (rank + 1) // world
        labelled = False
        for start in range(first, last, quality.batch_size):
            images, labels, codes = pl_module.evaluation_samples(
                start, min(quality.batch_size, last - start), pl_module.val_rng)
            quality.update(images, labels, codes)
            labelled = labels is not None
        if self._real_metrics is None:  # the first validation of this process
            val_set = getattr(trainer.datamodule, "val_set", None)
            assert val_set is not None, "the quality metrics need a data module with a validation split (val_set)"
            assert trainer.datamodule.dataset.name == quality.dataset.name, "samples judged by another dataset's net"
            quality.use_reference(val_set.images.cpu(), val_set.labels.cpu())
        metrics = quality.compute()
        quality.reset()
        if self._real_metrics is None:
            self._real_metrics = self._score_real_images(trainer, pl_module.hparams.sample_seed, labelled)
        pl_module.log_dict({f"val/{k}": float(v) for k, v in metrics.items() if k in LOGGED_QUALITY})
        pl_module.log_dict({f"val/real_{k}": float(v) for k, v in self._real_metrics.items() if k in LOGGED_QUALITY})

    def _score_real_images(self, trainer: L.Trainer, seed: int, labelled: bool) -> dict:
        """The real-data row, split over ranks like the samples; their true labels as the labels asked for, when the
        samples had labels asked for."""
        train_set = trainer.datamodule.train_set
        n = min(self.eval_samples, len(train_set.labels))
        first, last = n * trainer.global_rank // trainer.world_size, n * (trainer.global_rank + 1) // trainer.world_size
        images, labels = draw(train_set.images.cpu(), train_set.labels.cpu(), n, seed=seed)
        return self.quality.score_real(images[first:last], labels[first:last] if labelled else None)

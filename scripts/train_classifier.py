"""Train a dataset's classifier behind the quality metrics: `python scripts/train_classifier.py data=fashion_mnist`."""

from gan_lightning.metrics.train_classifier import main

if __name__ == "__main__":
    main()

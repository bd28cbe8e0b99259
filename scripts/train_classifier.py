"""Train the MNIST classifier behind the quality metrics: `python scripts/train_classifier.py --epochs 12 --seed 0`."""

from gan_lightning.metrics.train_classifier import main

if __name__ == "__main__":
    main()

"""Package a training run's generator as a bundled model with its model card (see gan_lightning/pretrained/card.py)."""

from gan_lightning.pretrained.card import main

if __name__ == "__main__":
    main()

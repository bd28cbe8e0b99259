"""Package a training run's generator as a bundled model with its model card (see gan_lightning/package_pretrained.py)."""

from gan_lightning.package_pretrained import main

if __name__ == "__main__":
    main()

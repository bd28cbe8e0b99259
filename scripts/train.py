"""Train a GAN on MNIST: `python scripts/train.py model=cgan trainer.max_epochs=50` (see conf/train.yaml)."""

from gan_lightning.train import main

if __name__ == "__main__":
    main()

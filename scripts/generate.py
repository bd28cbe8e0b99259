"""Digits from a generator: `python scripts/generate.py [model=cgan | ckpt_path=PATH] n=64 seed=0 out=DIR` (see --help)."""

from gan_lightning.generate import main

if __name__ == "__main__":
    main()

"""Quality numbers of a checkpoint beside real data: `python scripts/evaluate.py ckpt_path=PATH n=10000`."""

from gan_lightning.evaluate import main

if __name__ == "__main__":
    main()

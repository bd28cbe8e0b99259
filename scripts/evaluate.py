"""Quality numbers of a generator beside real data: `python scripts/evaluate.py [model=NAME | ckpt_path=PATH] n=10000`."""

from gan_lightning.evaluate import main

if __name__ == "__main__":
    main()

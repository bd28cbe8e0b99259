"""Train the MNIST classifier behind the quality metrics (FID/KID features, digit metrics).

    python scripts/train_classifier.py --epochs 12 --seed 0

writes outputs/classifier/mnist_classifier.pt and the .json record beside it: on the same machine type, the
same file as the shipped gan_lightning/metrics/weights/mnist_classifier.pt (compare the records' sha256). To
replace the shipped network, pass that path as --out.
"""

import argparse
import os
import shlex
import sys

from gan_lightning.errors import UserError, fail
from gan_lightning.metrics.train_classifier import train_classifier


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="outputs/classifier/mnist_classifier.pt",
                        help="weights file; the .json record goes beside it")
    parser.add_argument("--train-size", type=int, default=None, help="use only the first N training images")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads for torch")
    args = parser.parse_args(argv)
    command = shlex.join(["python", "scripts/train_classifier.py", *(sys.argv[1:] if argv is None else argv)])
    try:
        train_classifier(
            epochs=args.epochs,
            seed=args.seed,
            out_path=args.out,
            train_size=args.train_size,
            num_threads=args.threads,
            command=command,
        )
    except UserError as e:
        fail(e)


if __name__ == "__main__":
    main()

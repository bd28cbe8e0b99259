"""Train each model for a stated budget and print its quality table: `python scripts/benchmark_quality.py`."""

from gan_lightning.benchmarks.quality import main

if __name__ == "__main__":
    main()

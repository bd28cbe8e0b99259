"""Images/s of the project's training loop against a bare PyTorch loop: `python scripts/benchmark_throughput.py`."""

from gan_lightning.benchmarks.throughput import main

if __name__ == "__main__":
    main()

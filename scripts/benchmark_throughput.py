"""Images/s of the project's training loop against a bare PyTorch loop: `python scripts/benchmark_throughput.py`
(on the CPU, and on the GPU when there is one; `--device cuda` for the GPU alone, `--compile` to compile the networks)."""

from gan_lightning.benchmarks.throughput import main

if __name__ == "__main__":
    main()

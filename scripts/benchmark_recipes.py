"""Seed recipes vs default recipes, same budget and seed: `python scripts/benchmark_recipes.py --epochs 10`."""

from gan_lightning.benchmarks.recipes import main

if __name__ == "__main__":
    main()

"""Rebuild a sweep's summary.csv and summary.md: `python scripts/summarize_sweep.py multirun/train/<date>_<time>`."""

from gan_lightning.sweeps import main

if __name__ == "__main__":
    main()

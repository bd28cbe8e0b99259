"""Time to quality: training runs' validation FID, precision and recall against wall-clock minutes, a column per
model: `python scripts/plot_time_to_quality.py default=outputs/train/<run> "constant rates"=<other run> --out PNG`."""

from gan_lightning.benchmarks.quality import plot_main

if __name__ == "__main__":
    plot_main()

"""Train runs that go wrong in known ways, and the default models, and check the watchman's alarms on each:
`python scripts/benchmark_health.py --epochs 4`."""

from gan_lightning.benchmarks.health import main

if __name__ == "__main__":
    main()

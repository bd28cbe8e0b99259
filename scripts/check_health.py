"""The training watchman's alarms for finished runs, replayed from their logs:
`python scripts/check_health.py outputs/train/<date>_<time> [more runs or sweep folders]`."""

from gan_lightning.callbacks.health import main

if __name__ == "__main__":
    main()

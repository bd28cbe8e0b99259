"""The package's version: one place, read by the package and by what it writes (config.json of an export)."""

__version__ = "0.2.0"

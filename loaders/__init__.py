"""Training-analytics warehouse: loaders, embedded database and the `warehouse` CLI."""

__version__ = "0.1.0"

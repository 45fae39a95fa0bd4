"""Training-analytics warehouse: the `warehouse` command, the embedded database, dbt runs,
exports, checks, the scheduled job and the synthetic data generator. Loading raw files
is the `loaders` package."""

__version__ = "0.1.0"

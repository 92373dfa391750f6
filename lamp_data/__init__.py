"""Data side of the LAMP toolkit: simulators, the shard store, prompt sets and VLM rewards."""

__version__ = "0.1.0"

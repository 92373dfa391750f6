"""Thin click front ends: ``lamp-data``, ``lamp-agent`` and ``lamp-eval``."""

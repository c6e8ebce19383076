"""Cairn agent: the per-device backup engine, CLI and service."""

__version__ = "0.1.0"

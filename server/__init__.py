"""Cairn server: the authority (organizations, users, devices, licenses) and encrypted store."""

__version__ = "0.1.0"

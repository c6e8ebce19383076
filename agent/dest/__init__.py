"""Destinations: where an archive's objects live (local folder, Cairn server)."""

"""Cairn tray app: talks only to the agent's local control API."""

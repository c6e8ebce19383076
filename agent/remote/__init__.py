"""The agent's side of the Cairn server protocol: HTTP client, key levels, session."""

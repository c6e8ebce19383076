"""The agent's local control API: schemas (stdlib only), HTTP server, typed client.

The tray app and scripts import ``agent.api.client`` and ``agent.api.schemas``
and nothing else of the agent. See docs/local-api.md.
"""

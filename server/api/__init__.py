"""The HTTP API under /api/v1/ (FastAPI): one module per resource, assembled in ``app``."""

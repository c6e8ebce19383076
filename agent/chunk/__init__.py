"""Content-defined chunking."""

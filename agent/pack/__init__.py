"""Pack files: sealed blobs followed by a sealed header."""

"""Keys, compression and the authenticated blob envelope (pure: bytes in, bytes out)."""

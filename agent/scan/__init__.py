"""Walking backup sources."""

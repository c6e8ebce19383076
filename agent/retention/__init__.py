"""Retention: which snapshots to keep, deleted-files carry trees, and pack compaction."""

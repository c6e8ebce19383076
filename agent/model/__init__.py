"""Archive data model: blob types, tree nodes, snapshots and their codecs."""

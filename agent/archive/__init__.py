"""The repository model: keys, index, snapshots, locks on a destination."""

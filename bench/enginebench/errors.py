"""The one error type the benchmark raises for problems the user can fix."""


class BenchError(Exception):
    """A failure explained by a sentence (missing tool, failed download, ...)."""

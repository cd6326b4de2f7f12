"""The command line's own error: an argument that turned out wrong once used."""


class UsageError(Exception):
    """A command line argument that turned out wrong once used (exit 2, like argparse)."""

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(f"argument {argument}: {message}")

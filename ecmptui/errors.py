"""The one exception type the CLI turns into a single line on stderr and exit code 2."""


class EcmpError(Exception):
    """A failure the user can act on. Its message is one line, without secrets."""

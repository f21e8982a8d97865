"""The application layer's one error type."""


class UserError(Exception):
    """A mistake in the command line or its inputs: printed as one line, exit status 2."""

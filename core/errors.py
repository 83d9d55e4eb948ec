"""Errors a user can cause: entry points print them as one clear line, never a traceback."""


class UserError(Exception):
    """Bad input from the user (file, config, argument) or a missing resource they can fix."""


class ModelUnavailable(UserError):
    """The model spec points at nothing loadable here; the message says how to get it."""

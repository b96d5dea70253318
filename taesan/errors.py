"""User-facing errors: one line that names the problem (file, field, value).

The CLI prints these without a traceback; anything else is a bug and keeps its traceback.
"""


class TaesanError(Exception):
    """A problem with the user's input (file, config value, checkpoint), not a bug in taesan."""

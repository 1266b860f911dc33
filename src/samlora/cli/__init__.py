"""cli: the ``samlora`` command line, a table of subcommands over library functions.

Config-bearing commands take ``--config FILE.yaml`` and any key of the typed config tree as
``--section.key value`` (generated from the dataclasses in :mod:`samlora.config` by
jsonargparse, with their docstrings as help). ``registry`` holds the table, ``main`` parses and
dispatches, and one module per subcommand registers its parser and handler. User errors print
one clear message and exit with status 2, never a traceback.
"""

from .main import main

__all__ = ["main"]

"""One module per ``mailproto`` sub-command, each with ``add_parser(subparsers)`` and ``run``."""

"""mailproto: a teaching lab for the Internet mail protocols SMTP and POP3.

``import mailproto`` stays light: the protocol cores and the store only.  The widget layer lives
in ``mailproto.lab`` and pulls in ipywidgets and matplotlib when imported.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]

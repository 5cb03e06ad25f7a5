"""cairn-hello: an example cairn plugin, built the way any third party would build one.

It adds a content type, ``hello.greeting`` (``Greeting``), and a command,
``cairn hello greet NAME [--commit]``. The entry point ``hello`` names
``cairn_hello.plugin``, the light module of hook implementations.
"""

from __future__ import annotations

from cairn_hello.content import GREETINGS, Greeting, make_greeting

__all__ = ["GREETINGS", "Greeting", "make_greeting"]

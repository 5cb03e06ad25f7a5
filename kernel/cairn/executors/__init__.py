"""The first-party execution modules, registered by ``cairn.builtin`` through ``cairn_register_executors``.

=========  ==========================  =============================================
module     name                        does
=========  ==========================  =============================================
``shell``  ``ShellExecutor``           runs an argument list (never a shell string)
``http``   ``HttpExecutor``            one HTTP request to an allowlisted URL
``python`` ``PythonExecutor``          calls ``module:function`` in a subprocess
=========  ==========================  =============================================

Each reads its settings from ``[exec.<name>]`` (docs/governance.md).
"""

from __future__ import annotations

__all__: list[str] = []

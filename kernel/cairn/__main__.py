"""``python -m cairn``: the same as the ``cairn`` command."""

from cairn.launch import main

main()

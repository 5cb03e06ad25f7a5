"""Test support shipped with the kernel: pytest fixtures and conformance suites.

Installed as a pytest plugin (entry point ``pytest11``), so a plugin's tests
get the fixtures without importing anything. A storage backend runs the
conformance suite of each facet it declares (``cairn.testing.storage``) and
provides a ``store_opener`` fixture; see docs/storage.md. ``modules`` checks
a package's shape: no import cycles, no module over the size limit.
"""

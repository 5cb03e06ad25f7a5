"""Test support shipped with the kernel: pytest fixtures and conformance suites.

Installed as a pytest plugin (entry point ``pytest11``), so a plugin's tests
get the fixtures without importing anything. A storage backend runs the whole
storage suite by subclassing ``cairn.testing.storage.StoreConformance``
and providing a ``store_opener`` fixture; see docs/storage.md.
"""

"""cairn-artifacts: the ``local`` artifact store, a sharded directory of files named by their SHA-256."""

from cairn_artifacts.store import LocalArtifactStore, open_in_directory

__all__ = ["LocalArtifactStore", "open_in_directory"]

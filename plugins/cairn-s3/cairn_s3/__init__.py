"""cairn-s3: the ``s3`` artifact store, on any S3-compatible service (AWS S3, Cloudflare R2, MinIO)."""

from cairn_s3.config import S3Config

__all__ = ["S3Config"]

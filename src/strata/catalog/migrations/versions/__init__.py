"""Catalog schema revisions, oldest first: ``NNNN_slug.py`` with ``revision = "NNNN"``."""

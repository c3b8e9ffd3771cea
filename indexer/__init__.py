"""Indexer: metadata, keyframes, case linking, the catalog and search."""

"""Ingest: dock watching, device recognition and offload (device -> spool -> store -> catalog)."""

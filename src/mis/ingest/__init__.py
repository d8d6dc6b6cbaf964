"""MIS ingest stage."""

"""MIS segment stage."""

"""MIS api stage."""

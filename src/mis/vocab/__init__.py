"""MIS vocab stage."""

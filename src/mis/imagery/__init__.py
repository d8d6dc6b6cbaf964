"""MIS imagery stage."""

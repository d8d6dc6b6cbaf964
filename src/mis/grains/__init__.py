"""MIS grains stage."""

"""MIS catalogue stage."""

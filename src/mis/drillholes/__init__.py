"""MIS drillholes stage."""

"""Segments: customers who match conditions declared in `segments/*.yaml`, kept current."""

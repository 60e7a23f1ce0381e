"""Shrink-on-load decoding, one module per source format (as Pillow has one plugin per format)."""

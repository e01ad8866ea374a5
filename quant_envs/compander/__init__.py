"""Companding scalar quantizers: sources, exact distortion, compressor functions and environments."""

"""Model presets for the extraction stage."""

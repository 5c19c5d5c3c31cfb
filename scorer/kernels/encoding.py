"""Family ``encoding``: category encoders (placeholder until the encoders land)."""

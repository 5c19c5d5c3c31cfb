"""Family ``encoding`` exporters (placeholder until the encoders land)."""

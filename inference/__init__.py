"""cardiostream inference service."""

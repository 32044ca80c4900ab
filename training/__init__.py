"""cardiostream training service."""

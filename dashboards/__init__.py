"""cardiostream dashboards service."""

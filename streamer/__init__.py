"""cardiostream streamer service."""

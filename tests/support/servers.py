"""pytest plugin: fixtures for servers (filled in by its issue)."""

"""pytest plugin: fixtures for prism (filled in by its issue)."""

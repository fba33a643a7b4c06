"""Test support: fixtures that start real servers (pytest plugins) and shared helpers."""

"""pytest plugin: fixtures for firestore_emulator (filled in by its issue)."""

"""Files: reading runs tables and writing/reading lawfit's artefacts (the edge of the house)."""

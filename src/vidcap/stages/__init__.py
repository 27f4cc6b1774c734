"""The pipeline stages: each reads an upstream folder (or a corpus) and writes a stage folder."""

"""Built-in procedural dataset ``synthetic_streets`` (being written)."""

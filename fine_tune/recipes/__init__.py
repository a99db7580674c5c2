"""The recipe schema: dataclasses TrlParser fills from YAML + command-line overrides."""

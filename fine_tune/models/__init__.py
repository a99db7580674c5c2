"""Model I/O: precision, Hub ID or local path, loading, saving adapter + merged, lineage."""

"""Rows in: load (Hub ID or local file), validate with named reasons, split disjointly, manifest."""

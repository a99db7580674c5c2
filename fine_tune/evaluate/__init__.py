"""The eval phase: generation, scoring, statistics, report."""

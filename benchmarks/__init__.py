"""Benchmarks: the hardware table, measured throughput and memory, and the T4 projection."""

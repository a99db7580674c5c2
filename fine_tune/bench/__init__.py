"""Benchmarks: measured throughput, memory and the projections the job estimates use."""

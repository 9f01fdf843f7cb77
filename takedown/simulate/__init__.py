"""Simulated bots for demos, tests and benchmarks (loopback only)."""

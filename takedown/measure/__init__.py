"""Measure the botnet: machines not IPs, where they are, and how fast they fall."""

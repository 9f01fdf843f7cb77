"""The attribution graph: from the botnet's infrastructure to the people who run it."""

"""The case file: the evidence vault, the attribution graph and the legal documents."""

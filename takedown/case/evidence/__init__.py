"""The evidence vault: content-addressed items, a Merkle custody log, signed checkpoints."""

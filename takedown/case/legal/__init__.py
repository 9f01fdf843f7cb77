"""Legal documents: seizure lists, notice by publication, and the service log."""

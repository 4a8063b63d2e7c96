"""Store functions: the only code that reads and writes the tables."""

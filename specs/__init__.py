"""nasir's shipped .arch specs (package data): paper models and the standard library."""

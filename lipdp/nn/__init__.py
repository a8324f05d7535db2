"""lipdp.nn."""

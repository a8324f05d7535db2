"""lipdp.privacy."""

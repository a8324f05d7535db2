"""lipdp.data."""

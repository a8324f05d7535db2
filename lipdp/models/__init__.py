"""lipdp.models."""

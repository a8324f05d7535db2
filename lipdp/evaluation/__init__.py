"""lipdp.evaluation."""

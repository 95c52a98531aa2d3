"""The sync engine: state, reconciliation (pure) and the folder cycle."""

"""One account's sync run: folder pairing, connections, scoped errors."""

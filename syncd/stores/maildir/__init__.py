"""The Maildir near store."""

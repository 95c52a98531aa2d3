"""The two sides of a sync: the far store (IMAP) and the near store (Maildir)."""

"""The daemon: scheduler, IDLE listeners, Maildir watcher."""

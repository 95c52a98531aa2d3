"""Extensions: plugin hooks, the plugin loader and server-side rules."""

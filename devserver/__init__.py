"""Development-only helpers: a private, throwaway Dovecot for the tests, the quick
start and the benchmarks.  Not part of the installed ``syncd`` package; run from the
project root (``python -m devserver start --dir DIR``)."""

"""The `syncd` command."""

"""Built-in phantom specifications (TOML), installed as simsbrt.builtin_phantoms."""

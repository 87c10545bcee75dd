"""Thin command-line commands, one module per subcommand."""

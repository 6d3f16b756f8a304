"""Command-line tools: thin layers that parse flags, call the package and print clear errors."""

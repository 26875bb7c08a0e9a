"""The node-local command line: parses flags, calls the node service, renders."""

"""Node engine: read the runtime, plan, remove. `service` is its one entry point for
the CLI and the agent; nothing here parses flags or prints."""

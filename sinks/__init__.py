"""sinks: one module per store."""

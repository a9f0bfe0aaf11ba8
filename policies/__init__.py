"""policies: one small module per error policy."""

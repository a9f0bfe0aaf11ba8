"""tasks: what a worker process runs (consume -> route -> write -> commit)."""

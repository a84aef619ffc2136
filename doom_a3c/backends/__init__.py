"""Where the workers run: ``local`` (processes on this machine, sharing memory)."""

"""Processes and operations above the hot path: the runtime of one config, the worker and its reloads, the
supervisor of several workers, the admin listener and the access log."""

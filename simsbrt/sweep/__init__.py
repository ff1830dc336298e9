"""Scripted parameter sweeps (issue 6): sweep files, resumable runner, influence cache, results table."""

"""Hydra config groups of `attnas-search` (a package so `pkg://conf` finds them once installed)."""

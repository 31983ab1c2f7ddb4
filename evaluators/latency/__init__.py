"""Latency: timing a model here (`timing`), the sources a search takes latency from (`sources`:
the timer, a device profile), device profiles (`profile`) and the lock that keeps timing and
training apart on one device (`device_lock`)."""

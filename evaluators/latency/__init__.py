"""Latency: timing a model here (`timing`) on the runtime the user deploys (`runtimes`), when a
timing cannot be trusted (`disturbance`), what it was measured under (`environment`), the sources a
search takes latency from (`sources`: the timer, a device profile) and device profiles (`profile`).
The lock that keeps timing and training apart on one device is `attnas.evaluators.device_lock`."""

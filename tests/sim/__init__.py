"""Binding-level tests of the embedded simulated exchange (webctp.sim)."""

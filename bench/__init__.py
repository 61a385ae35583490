"""Benchmarks for webctp: ``python -m bench [--quick]`` writes artifacts/benchmarks.md.

Processes: the orchestrator (``bench.__main__``) starts the service under test in its own
process (``bench.service``: the real ``webctp.service.run_service`` plus benchmark-only hooks
and a JSON-lines control channel on stdin/stdout), the baseline servers (``bench.bare``: bare
trio-websocket) and the load generators (``bench.client``), all on loopback.
"""

"""Local stand-ins for the Cliniko and Splose APIs, used by the demo, the tests and the benchmarks.

Nothing under ``cliniko_assets/`` or ``splose_resources/`` imports this package: the pipeline only
ever sees an HTTP base URL.
"""

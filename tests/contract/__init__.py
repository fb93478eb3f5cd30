"""Contract tests: one specification run against every implementation of an interface."""

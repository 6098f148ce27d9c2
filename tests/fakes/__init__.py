"""Fakes of outside services, for tests, benchmarks and end-to-end runs."""

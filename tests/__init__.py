"""The project's tests: a package, so that tools, benchmarks and tests import its helpers (tests.support) by name."""

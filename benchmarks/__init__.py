"""The measurements, run from the root as modules (`python -m benchmarks.attacks`), as the Makefile does."""

"""The project's generators, run from the root as modules: `python -m tools.make_docs`."""

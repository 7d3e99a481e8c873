"""Everything that touches student code. worker.py runs inside the sandbox; launch.py decides how
it is started (the one place isolation is arranged); client.py is the trusted side's handle."""

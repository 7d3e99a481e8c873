"""Everything that touches student code. worker.py runs inside the sandbox; launch.py starts and
stops it, in the steps of its isolation level (levels.py: the one place isolation is arranged, one
module per mechanism: uidpool.py, seccomp.py, permissions.py, reaping.py, and contain.py, the
worker's first program); client.py is the trusted side's handle."""

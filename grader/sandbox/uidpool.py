"""The pool of uids sandboxed workers run as (`namespace` and `uid` levels): numeric uids with no
account, so nothing on the machine belongs to them; one per concurrent worker, held with an
exclusive lock on a file of its own until the worker stops and nothing of it is left running."""
import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

fcntl: ModuleType | None
try:  # POSIX only: without it (Windows) no level has a uid of its own
    import fcntl
except ImportError:
    fcntl = None

UID_POOL = range(61000, 61064)
UID_LOCKS = Path("/tmp/.autodiff-grader-uids")


@dataclass
class UidClaim:
    """A uid of the pool, and the locked descriptor that keeps it this worker's."""
    uid: int
    lock: int | None

    def release(self) -> None:
        """The uid is free again: call only once nothing runs as it any more."""
        if self.lock is not None:
            os.close(self.lock)
            self.lock = None


def claim_uid() -> UidClaim:
    """A uid no other running worker has."""
    assert fcntl is not None  # only the levels with a uid of their own claim one: they need POSIX
    UID_LOCKS.mkdir(mode=0o700, exist_ok=True)
    for uid in UID_POOL:
        descriptor = os.open(UID_LOCKS / str(uid), os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return UidClaim(uid, descriptor)
        except BlockingIOError:
            os.close(descriptor)
    raise RuntimeError(f"all {len(UID_POOL)} sandbox uids are in use")

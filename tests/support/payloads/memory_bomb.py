size = 1 << 30  # fills the worker's address space to the last MB, and keeps it (_hog is global)
while size >= 1 << 20:
    try:
        _hog.append(np.zeros(size, dtype=np.uint8))  # untouched pages count for RLIMIT_AS all the same
    except MemoryError:
        size //= 2
raise MemoryError("no memory left for the checks that follow")

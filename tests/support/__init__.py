"""What the tests share with each other and with the benchmarks: the trees' paths, gradings made once,
the attack suite and the corpora of one-slip submissions."""

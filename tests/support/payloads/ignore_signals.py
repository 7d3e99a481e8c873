import signal
for _signal in (signal.SIGTERM, signal.SIGXCPU, signal.SIGINT, signal.SIGHUP, signal.SIGALRM, signal.SIGXFSZ):
    signal.signal(_signal, signal.SIG_IGN)

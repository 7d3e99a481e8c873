import threading, time
while True:
    threading.Thread(target=time.sleep, args=(10 ** 6,), daemon=True).start()

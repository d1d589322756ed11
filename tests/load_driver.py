#!/usr/bin/env python3
"""Holds many unauthenticated connections open against a port, like an attacker.

Usage: load_driver.py PORT IDLE DRIP SECONDS
IDLE connections connect and send nothing; DRIP connections send an SSH
version line and then one byte a second. Sources are spread over
127.1.X.Y so per-source caps do not simply refuse them. Prints "ready N"
once the connections are attempted, then, at the end, counts of
connections the server accepted and closed.
"""
import resource, socket, sys, time, selectors

port, idle, drip, seconds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

socks = []
refused = 0
for i in range(idle + drip):
    src = "127.1.%d.%d" % (i // 200 % 250, i % 200 + 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(True)
    s.settimeout(2)
    try:
        s.bind((src, 0))
        s.connect(("127.0.0.1", port))
    except OSError:
        refused += 1
        s.close()
        continue
    s.setblocking(False)
    kind = "drip" if i >= idle else "idle"
    if kind == "drip":
        try:
            s.send(b"SSH-2.0-drip\r\n")
        except OSError:
            pass
    socks.append((s, kind))
print("ready %d refused %d" % (len(socks), refused), flush=True)

closed = 0
alive = {s.fileno(): (s, k) for s, k in socks}
end = time.time() + seconds
sel = selectors.DefaultSelector()
for s, k in socks:
    sel.register(s, selectors.EVENT_READ)
next_drip = time.time() + 1
while time.time() < end and alive:
    for key, _ in sel.select(timeout=0.2):
        s = key.fileobj
        try:
            data = s.recv(65536)
        except BlockingIOError:
            continue
        except OSError:
            data = b""
        if not data:
            sel.unregister(s)
            alive.pop(s.fileno(), None)
            s.close()
            closed += 1
    if time.time() >= next_drip:
        next_drip += 1
        for s, k in list(alive.values()):
            if k == "drip":
                try:
                    s.send(b"x")
                except OSError:
                    pass
print("done attempted %d held_to_end %d closed_by_server %d" % (idle + drip, len(alive), closed), flush=True)

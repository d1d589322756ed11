#!/usr/bin/env python3
"""Runs `portcullis replay` in a pty, waits for WAIT_FOR, presses KEY, and
prints what was shown and how long the replay took after the key."""
import os, pty, select, sys, time

wait_for, key = sys.argv[1], sys.argv[2]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[3], sys.argv[3:])
seen = b""
pressed = None
deadline = time.time() + 60
while time.time() < deadline:
    r, _, _ = select.select([fd], [], [], 0.1)
    if r:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    if pressed is None and wait_for.encode() in seen:
        time.sleep(0.3)
        os.write(fd, key.encode())
        pressed = time.time()
_, status = os.waitpid(pid, 0)
after = time.time() - pressed if pressed else -1
sys.stdout.write("AFTER-KEY %.2f\n%s" % (after, seen.decode(errors="replace")))

#!/usr/bin/env python3
"""Types at a no-echo password prompt through a real pty, like `sudo` asks.

Usage: rec_driver.py SECRET ssh [args...]
Waits for the prompt before typing, so the remote tty really has echo off.
"""
import os, pty, select, sys, time

secret = sys.argv[1]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
seen = b""

def until(needle, timeout=15):
    global seen
    end = time.time() + timeout
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        if needle.encode() in seen:
            return
    sys.stderr.write("did not see %r in %r\n" % (needle, seen))
    sys.exit(1)

os.write(fd, b"echo READY-$((40+2))\r")
until("READY-42")
os.write(fd, b"stty -echo; printf 'Password: '; read -r pw; stty echo; echo; echo LEN-${#pw}\r")
until("Password: ")
time.sleep(0.3)
os.write(fd, secret.encode() + b"\r")
until("LEN-%d" % len(secret))
os.write(fd, b"echo VISIBLE-$((3*3))\r")
until("VISIBLE-9")
os.write(fd, b"exit\r")
_, status = os.waitpid(pid, 0)
sys.stdout.write(seen.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))

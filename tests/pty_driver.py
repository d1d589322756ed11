#!/usr/bin/env python3
"""Drives an ssh client inside a real pseudo-terminal, like a person would.

Usage: pty_driver.py ssh [args...]
Types keystrokes, changes the window size, sends Ctrl-C, and checks what the
remote shell answers. Exits non-zero with the transcript on any failure.
"""
import sys, time
from ptyterm import Term, set_size

t = Term(sys.argv[1:], rows=30, cols=90)
# Markers computed by the remote shell, so our own echoed keystrokes never match.
t.send("echo READY-$((20+22))\n")
t.until("READY-42")
t.send("stty size; echo SIZE1-$((1+1))\n")
t.until("SIZE1-2")
if b"30 90" not in t.seen:
    t.fail("initial size 30x90 not seen by the remote")
set_size(t.fd, 50, 120)
time.sleep(0.5)
t.send("stty size; echo SIZE2-$((2+2))\n")
t.until("SIZE2-4")
if b"50 120" not in t.seen:
    t.fail("window change to 50x120 not seen by the remote")
t.send("tty; echo TTY-$((3+3))\n")
t.until("TTY-6")
if b"/dev/pts/" not in t.seen:
    t.fail("remote has no pty")
# Ctrl-C interrupts a long command through the remote tty driver.
start = time.time()
t.send("sleep 30; echo NOT-INTERRUPTED\n")
time.sleep(0.7)
t.send("\x03")
t.send("echo AFTER-INT-$((4+4))\n")
t.until("AFTER-INT-8", timeout=5)
if time.time() - start > 6:
    t.fail("Ctrl-C did not interrupt sleep")
if b"NOT-INTERRUPTED" in t.seen.split(b"sleep 30; echo NOT-INTERRUPTED", 1)[1]:
    t.fail("sleep was not interrupted")
t.send("exit 3\n")
code = t.wait()
if code != 3:
    t.fail("exit code %d, expected 3" % code)
print(t.text())

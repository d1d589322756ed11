#!/usr/bin/env python3
"""Runs `portcullis replay` in a pty, waits for WAIT_FOR, presses KEY, and
prints what was shown and how long the replay took after the key.

Usage: replay_keys.py WAIT_FOR KEY portcullis [args...]
"""
import sys, time
from ptyterm import Term

wait_for, key = sys.argv[1], sys.argv[2]
t = Term(sys.argv[3:])
pressed = None
deadline = time.time() + 60
while time.time() < deadline and t.read_some():
    if pressed is None and wait_for.encode() in t.seen:
        time.sleep(0.3)
        t.send(key)
        pressed = time.time()
t.wait()
after = time.time() - pressed if pressed else -1
sys.stdout.write("AFTER-KEY %.2f\n%s" % (after, t.text()))

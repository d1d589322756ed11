#!/usr/bin/env python3
"""Types at a no-echo password prompt through a real pty, like `sudo` asks.

Usage: rec_driver.py SECRET ssh [args...]
Waits for the prompt before typing, so the remote tty really has echo off.
"""
import sys, time
from ptyterm import Term

secret = sys.argv[1]
t = Term(sys.argv[2:])
t.send("echo READY-$((40+2))\r")
t.until("READY-42", timeout=15)
t.send("stty -echo; printf 'Password: '; read -r pw; stty echo; echo; echo LEN-${#pw}\r")
t.until("Password: ", timeout=15)
time.sleep(0.3)
t.send(secret + "\r")
t.until("LEN-%d" % len(secret), timeout=15)
t.send("echo VISIBLE-$((3*3))\r")
t.until("VISIBLE-9", timeout=15)
t.send("exit\r")
code = t.wait()
sys.stdout.write(t.text())
sys.exit(code)

#!/usr/bin/env python3
"""Types a command that a lockdown rule forbids into a real interactive shell
through the bastion, and reports how the session ended.

Usage: rule_driver.py COMMAND ssh [args...]
Prints the transcript; exits 0 if the session was ended by the bastion
within 5 s of the command, 1 otherwise.
"""
import sys, time
from ptyterm import Term

command = sys.argv[1]
t = Term(sys.argv[2:], rows=30, cols=100)
t.send("echo READY-$((20+22))\n")
t.until("READY-42")
start = time.time()
t.send(command + "\n")
end = time.time() + 10
while not t.closed and time.time() < end:
    t.read_some()
code = t.wait()
took = time.time() - start
print(t.text())
print("EXIT %d AFTER %.2f" % (code, took))
sys.exit(0 if took < 5 else 1)

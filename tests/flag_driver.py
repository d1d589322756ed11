#!/usr/bin/env python3
"""Types lines into a real interactive shell through the bastion, then
leaves, and reports whether the shell was still there after each line (a
flagging rule detects; it does not end the session).

Usage: flag_driver.py LINE [LINE...] -- ssh [args...]
Prints the transcript; exits 0 if every line was followed by a prompt
marker and the shell exited normally, 1 otherwise.
"""
import sys
from ptyterm import Term

split = sys.argv.index("--")
lines, argv = sys.argv[1:split], sys.argv[split + 1:]
t = Term(argv, rows=30, cols=200)
t.send("echo READY-$((20+22))\n")
t.until("READY-42")
for i, line in enumerate(lines):
    t.send(line + "\n")
    t.send("echo STILL-$((%d+100))\n" % i)
    t.until("STILL-%d" % (i + 100))
t.send("exit\n")
while not t.closed:
    t.read_some()
code = t.wait()
print(t.text())
print("EXIT %d" % code)
sys.exit(0 if code == 0 else 1)

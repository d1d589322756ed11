#!/usr/bin/env python3
"""Drives an ssh client inside a real pseudo-terminal, like a person would.

Usage: pty_driver.py ssh [args...]
Types keystrokes, changes the window size, sends Ctrl-C, and checks what the
remote shell answers. Exits non-zero with the transcript on any failure.
"""
import fcntl, os, pty, select, struct, sys, termios, time

def set_size(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

pid, fd = pty.fork()
if pid == 0:
    set_size(0, 30, 90)
    os.execvp(sys.argv[1], sys.argv[1:])

transcript = b""

def read_until(needle, timeout=10.0):
    global transcript
    deadline = time.time() + timeout
    while time.time() < deadline:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            transcript += chunk
        if needle.encode() in transcript:
            return True
    fail("did not see %r" % needle)

def fail(msg):
    sys.stderr.write("FAIL: %s\n--- transcript ---\n%s\n" % (msg, transcript.decode(errors="replace")))
    sys.exit(1)

def send(s):
    os.write(fd, s.encode())

# Markers computed by the remote shell, so our own echoed keystrokes never match.
send("echo READY-$((20+22))\n")
read_until("READY-42")
send("stty size; echo SIZE1-$((1+1))\n")
read_until("SIZE1-2")
if b"30 90" not in transcript:
    fail("initial size 30x90 not seen by the remote")
set_size(fd, 50, 120)
time.sleep(0.5)
send("stty size; echo SIZE2-$((2+2))\n")
read_until("SIZE2-4")
if b"50 120" not in transcript:
    fail("window change to 50x120 not seen by the remote")
send("tty; echo TTY-$((3+3))\n")
read_until("TTY-6")
if b"/dev/pts/" not in transcript:
    fail("remote has no pty")
# Ctrl-C interrupts a long command through the remote tty driver.
start = time.time()
send("sleep 30; echo NOT-INTERRUPTED\n")
time.sleep(0.7)
send("\x03")
send("echo AFTER-INT-$((4+4))\n")
read_until("AFTER-INT-8", timeout=5)
if time.time() - start > 6:
    fail("Ctrl-C did not interrupt sleep")
if b"NOT-INTERRUPTED" in transcript.split(b"sleep 30; echo NOT-INTERRUPTED", 1)[1]:
    fail("sleep was not interrupted")
send("exit 3\n")
_, status = os.waitpid(pid, 0)
code = os.waitstatus_to_exitcode(status)
if code != 3:
    fail("exit code %d, expected 3" % code)
print(transcript.decode(errors="replace"))

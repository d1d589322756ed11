#!/usr/bin/env python3
"""Keystroke round trip through one ssh command: what a typist feels.

Usage: echo_probe.py KEYS -- ssh ARGS... HOST
Runs `stty raw -echo; exec cat` on HOST in a pty (ssh -tt), then writes one
byte at a time and waits for it to come back, KEYS times after a warm-up.
Prints "MEDIAN_MS P99_MS" on stdout. Used by benches/throughput.sh.
"""
import os
import subprocess
import sys
import time


def main() -> int:
    keys = int(sys.argv[1])
    assert sys.argv[2] == "--", "usage: echo_probe.py KEYS -- ssh ARGS... HOST"
    cmd = sys.argv[3:] + ["-tt", "stty raw -echo; echo ready; exec cat"]
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    out, inp = p.stdout.fileno(), p.stdin.fileno()
    seen = b""
    while b"ready" not in seen:
        chunk = os.read(out, 4096)
        if not chunk:
            print("echo_probe: the session ended before it was ready", file=sys.stderr)
            return 1
        seen += chunk
    times = []
    for i in range(keys + 20):
        key = bytes([ord("a") + i % 26])
        start = time.perf_counter()
        os.write(inp, key)
        got = b""
        while key not in got:
            chunk = os.read(out, 4096)
            if not chunk:
                print("echo_probe: the session ended mid-probe", file=sys.stderr)
                return 1
            got += chunk
        if i >= 20:  # warm-up: first keystrokes pay for lazy setup
            times.append(time.perf_counter() - start)
        time.sleep(0.002)  # a fast typist, not a flood
    p.stdin.close()
    p.kill()
    p.wait()
    times.sort()
    med = times[len(times) // 2] * 1e3
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))] * 1e3
    print(f"{med:.3f} {p99:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A program in a real pseudo-terminal, driven like a person at a keyboard.

Shared by the pty drivers in this directory.
"""
import fcntl, os, pty, select, struct, sys, termios, time


def set_size(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class Term:
    def __init__(self, argv, rows=None, cols=None):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            if rows:
                set_size(0, rows, cols)
            os.execvp(argv[0], argv)
        self.seen = b""
        self.closed = False

    def read_some(self, timeout=0.1):
        """Reads what is there within `timeout`; False once the program is gone."""
        r, _, _ = select.select([self.fd], [], [], timeout)
        if r:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                self.closed = True
                return False
            self.seen += chunk
        return True

    def until(self, needle, timeout=10.0):
        end = time.time() + timeout
        while time.time() < end and not self.closed:
            self.read_some()
            if needle.encode() in self.seen:
                return
        self.fail("did not see %r" % needle)

    def send(self, text):
        os.write(self.fd, text.encode())

    def wait(self):
        _, status = os.waitpid(self.pid, 0)
        return os.waitstatus_to_exitcode(status)

    def text(self):
        return self.seen.decode(errors="replace")

    def fail(self, msg):
        sys.stderr.write("FAIL: %s\n--- transcript ---\n%s\n" % (msg, self.text()))
        sys.exit(1)

"""A paramiko client driven by tests/clients.rs: log in through the bastion
(keys offered in order, then the TOTP code over keyboard-interactive), then
optionally exec, a pty shell and an SFTP round-trip on the same connection.
Prints one JSON object; exit 1 on a failure (the JSON says which step)."""

import argparse
import base64
import json
import socket
import sys
import time

import paramiko
from paramiko import common
from paramiko.message import Message


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--host-key", required=True, help="the bastion's .pub file")
    p.add_argument("--key", action="append", default=[], help="offered in order")
    p.add_argument("--code", default="", help="TOTP code for keyboard-interactive")
    p.add_argument("--exec", dest="exec_cmd")
    p.add_argument("--pty", help="script typed into a pty shell")
    p.add_argument("--put", nargs=2, metavar=("LOCAL", "REMOTE"))
    p.add_argument("--get", nargs=2, metavar=("REMOTE", "LOCAL"))
    p.add_argument("--probe-after-auth", metavar="OTHER_USER",
                   help="once logged in, ask for ssh-userauth again and try OTHER_USER")
    return p.parse_args()


def check_host_key(transport, pub_file):
    kind, blob = open(pub_file).read().split()[:2]
    seen = transport.get_remote_server_key()
    if seen.get_name() != kind or seen.asbytes() != base64.b64decode(blob):
        raise paramiko.SSHException("host key does not match the known key")


def login(t, args, methods):
    """Keys in order (a refused key is how an agent with several keys looks),
    then the code if the server asks for a second factor."""
    for path in args.key:
        key = paramiko.PKey.from_path(path)
        try:
            allowed = t.auth_publickey(args.user, key)
        except paramiko.AuthenticationException as e:
            if "timeout" in str(e).lower():
                raise  # no answer at all is not a refusal
            methods.append("publickey(refused)")
            continue
        methods.append("publickey")
        if t.is_authenticated() or "keyboard-interactive" in allowed:
            break
    if not t.is_authenticated() and args.code:

        def answer(_title, _instructions, prompts):
            return [args.code for _ in prompts]

        t.auth_interactive(args.user, answer)
        methods.append("keyboard-interactive")
    if not t.is_authenticated():
        raise paramiko.AuthenticationException("not authenticated")


def read_all(chan):
    out, err = b"", b""
    while True:
        if chan.recv_ready():
            out += chan.recv(65536)
        elif chan.recv_stderr_ready():
            err += chan.recv_stderr(65536)
        elif chan.exit_status_ready() and chan.eof_received:
            break
        else:
            time.sleep(0.005)
    while chan.recv_ready():
        out += chan.recv(65536)
    while chan.recv_stderr_ready():
        err += chan.recv_stderr(65536)
    return out, err


def run_exec(t, cmd):
    chan = t.open_session(timeout=10)
    chan.exec_command(cmd)
    out, err = read_all(chan)
    return {"stdout": out.decode(errors="replace"), "stderr": err.decode(errors="replace"),
            "exit": chan.recv_exit_status()}


def run_pty(t, script):
    chan = t.open_session(timeout=10)
    chan.get_pty(term="xterm", width=100, height=30)
    chan.invoke_shell()
    chan.sendall(script.encode())
    out, _ = read_all(chan)
    return {"output": out.decode(errors="replace"), "exit": chan.recv_exit_status()}


class Watch:
    """Stands in for paramiko's auth handler once logged in: records any
    authentication reply instead of acting on it."""

    CODES = (common.MSG_SERVICE_ACCEPT, common.MSG_USERAUTH_SUCCESS,
             common.MSG_USERAUTH_FAILURE, common.MSG_USERAUTH_BANNER,
             common.MSG_USERAUTH_INFO_REQUEST)

    def __init__(self, inner):
        self.inner = inner
        self.seen = []

    @property
    def _handler_table(self):
        return {c: (lambda _m, c=c: self.seen.append(common.MSG_NAMES[c])) for c in self.CODES}

    def __getattr__(self, name):
        return getattr(self.inner, name)


def probe_after_auth(t, other_user):
    """A client that, once authenticated, asks for the ssh-userauth service
    again and tries to authenticate as someone else: neither may be answered,
    and the connection stays the first user's."""
    watch = Watch(t.auth_handler)
    t.auth_handler = watch
    m = Message()
    m.add_byte(common.cMSG_SERVICE_REQUEST)
    m.add_string("ssh-userauth")
    t._send_message(m)
    m = Message()
    m.add_byte(common.cMSG_USERAUTH_REQUEST)
    m.add_string(other_user)
    m.add_string("ssh-connection")
    m.add_string("none")
    t._send_message(m)
    # Processed in order: once this exec has run, so have the two above.
    after = run_exec(t, "echo still-here")
    time.sleep(0.3)
    return {"replies": watch.seen, "exec": after}


def main():
    args = parse_args()
    result = {"client": "paramiko " + paramiko.__version__, "methods": []}
    step = "connect"
    try:
        t0 = time.monotonic()
        sock = socket.create_connection(("127.0.0.1", args.port), timeout=10)
        t = paramiko.Transport(sock)
        # A login slower than this is a failure anyway (the bar is 2 s).
        t.auth_timeout = 10
        t.start_client(timeout=10)
        check_host_key(t, args.host_key)
        step = "login"
        login(t, args, result["methods"])
        result["login_secs"] = round(time.monotonic() - t0, 3)
        if args.probe_after_auth:
            step = "probe"
            result["probe"] = probe_after_auth(t, args.probe_after_auth)
        if args.exec_cmd is not None:
            step = "exec"
            result["exec"] = run_exec(t, args.exec_cmd)
        if args.pty is not None:
            step = "pty"
            result["pty"] = run_pty(t, args.pty)
        if args.put or args.get:
            step = "sftp"
            sftp = t.open_sftp_client()
            if args.put:
                sftp.put(args.put[0], args.put[1])
            if args.get:
                sftp.get(args.get[0], args.get[1])
            sftp.close()
            result["sftp"] = True
        t.close()
    except Exception as e:  # reported to the test, which asserts on it
        result["error"] = "%s: %s: %r" % (step, type(e).__name__, e)
        print(json.dumps(result))
        sys.exit(1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

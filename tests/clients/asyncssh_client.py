"""An asyncssh client driven by tests/clients.rs; same arguments and JSON
result as paramiko_client.py (keys offered in order, then the TOTP code over
keyboard-interactive; exec, a pty shell and an SFTP round-trip)."""

import argparse
import asyncio
import json
import sys
import time

import asyncssh


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
    return p.parse_args()


class Client(asyncssh.SSHClient):
    """Offers the keys one at a time, as the server refuses them, and
    answers the code: records each method as it is used."""

    def __init__(self, keys, code, methods):
        self.keys = list(keys)
        self.code = code
        self.methods = methods

    def public_key_auth_requested(self):
        # Asked again: the key before was refused.
        if self.methods and self.methods[-1] == "publickey":
            self.methods[-1] = "publickey(refused)"
        if not self.keys:
            return None
        self.methods.append("publickey")
        return self.keys.pop(0)

    def kbdint_auth_requested(self):
        return "" if self.code else None

    def kbdint_challenge_received(self, name, instructions, lang, prompts):
        if not prompts:
            return []
        self.methods.append("keyboard-interactive")
        return [self.code for _ in prompts]


async def session(args, result):
    kind, blob = open(args.host_key).read().split()[:2]
    known = asyncssh.import_known_hosts("[127.0.0.1]:%d %s %s\n" % (args.port, kind, blob))
    keys = [asyncssh.read_private_key(k) for k in args.key]
    methods = result["methods"]
    t0 = time.monotonic()
    result["step"] = "login"
    conn, _ = await asyncssh.create_connection(
        lambda: Client(keys, args.code, methods), "127.0.0.1", args.port,
        username=args.user, known_hosts=known, client_keys=None, config=[],
        agent_path=None, password=None, preferred_auth="publickey,keyboard-interactive",
        login_timeout=10)
    result["login_secs"] = round(time.monotonic() - t0, 3)
    async with conn:
        if args.exec_cmd is not None:
            result["step"] = "exec"
            r = await conn.run(args.exec_cmd, check=False, encoding=None)
            result["exec"] = {"stdout": r.stdout.decode(errors="replace"),
                              "stderr": r.stderr.decode(errors="replace"),
                              "exit": r.exit_status}
        if args.pty is not None:
            result["step"] = "pty"
            r = await conn.run(input=args.pty.encode(), term_type="xterm", term_size=(100, 30),
                               check=False, encoding=None)
            result["pty"] = {"output": r.stdout.decode(errors="replace"), "exit": r.exit_status}
        if args.put or args.get:
            result["step"] = "sftp"
            async with conn.start_sftp_client() as sftp:
                if args.put:
                    await sftp.put(args.put[0], args.put[1])
                if args.get:
                    await sftp.get(args.get[0], args.get[1])
            result["sftp"] = True


async def main():
    args = parse_args()
    result = {"client": "asyncssh " + asyncssh.__version__, "methods": []}
    result["step"] = "connect"
    try:
        await session(args, result)
    except Exception as e:  # reported to the test, which asserts on it
        result["error"] = "%s: %s: %r" % (result["step"], type(e).__name__, e)
        print(json.dumps(result))
        sys.exit(1)
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())

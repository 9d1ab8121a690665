#!/usr/bin/env python3
"""A real SMTP server (aiosmtpd) for the invites-smtp tests.

Listens on 127.0.0.1 on a free port and prints `READY <port>` once it accepts connections.
Every message it accepts is stored in DIR as NNNN.eml (the raw bytes as received) and
NNNN.json (the envelope: MAIL FROM, RCPT TO, whether TLS and AUTH were in use, the
client's port, which tells connections apart); the .json is
written last, so its presence means the message is complete.

Before each RCPT it reads DIR/rules.json, a map from recipient address to the reply to give
instead of accepting it, e.g. {"ann@example.com": "451 4.3.0 Try again later"}, and
before storing a message, the key "data:<recipient>" for the reply to the data instead
(e.g. {"data:ann@example.com": "554 5.6.0 Content rejected"}); a test rewrites that file to
change the server's answers.

Modes: --mode plain (no TLS), --mode starttls (STARTTLS offered and required before MAIL),
--mode tls (implicit TLS); the TLS modes take --cert and --key (PEM files). --auth USER:PASS
requires that login (over TLS only).

It stops when its standard input closes, so it never outlives the test that started it.
"""

import argparse
import asyncio
import json
import os
import ssl
import sys
import threading
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Store:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    def rule_for(self, key):
        try:
            with open(os.path.join(self.directory, "rules.json"), encoding="utf-8") as f:
                rules = json.load(f)
        except FileNotFoundError:
            return None
        return rules.get(key.lower())

    def save(self, server, envelope, session):
        self.count += 1
        base = os.path.join(self.directory, "%04d" % self.count)
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.replace(base + ".eml.tmp", base + ".eml")
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": session.ssl is not None
            or server.transport.get_extra_info("ssl_object") is not None,
            "authenticated": bool(session.authenticated),
            "peer_port": session.peer[1] if session.peer else None,
        }
        with open(base + ".json.tmp", "w", encoding="utf-8") as f:
            json.dump(meta, f)
        os.replace(base + ".json.tmp", base + ".json")


class Handler:
    def __init__(self, store):
        self.store = store

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        rule = self.store.rule_for(address)
        if rule:
            return rule
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        for address in envelope.rcpt_tos:
            rule = self.store.rule_for("data:" + address)
            if rule:
                return rule
        self.store.save(server, envelope, session)
        return "250 Message accepted for delivery"


def authenticator_for(expected):
    user, _, password = expected.partition(":")

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == user
            and auth_data.password.decode() == password
        )
        return AuthResult(success=ok, handled=False)

    return authenticate


def main():
    warnings.simplefilter("ignore", DeprecationWarning)
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--mode", choices=["plain", "starttls", "tls"], default="plain")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--auth")
    args = parser.parse_args()

    context = None
    if args.mode != "plain":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)

    store = Store(args.dir)
    handler = Handler(store)
    kwargs = {"hostname": "mx.invites.test", "decode_data": False}
    if args.mode == "starttls":
        kwargs.update(tls_context=context, require_starttls=True)
    if args.auth:
        kwargs.update(
            authenticator=authenticator_for(args.auth),
            auth_required=True,
            auth_require_tls=True,
        )

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(
            lambda: SMTP(handler, loop=loop, **kwargs),
            host="127.0.0.1",
            port=0,
            ssl=context if args.mode == "tls" else None,
        )
    )
    port = server.sockets[0].getsockname()[1]
    print("READY %d" % port, flush=True)

    def wait_for_stdin_eof():
        sys.stdin.read()
        loop.call_soon_threadsafe(loop.stop)

    threading.Thread(target=wait_for_stdin_eof, daemon=True).start()
    try:
        loop.run_forever()
    finally:
        server.close()
        loop.run_until_complete(server.wait_closed())


if __name__ == "__main__":
    main()

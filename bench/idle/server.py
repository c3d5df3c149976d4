#!/usr/bin/env python3
"""A light POP3 server for the idle-sessions bench: 127.0.0.1 only, any
USER/PASS accepted, CAPA, NOOP, QUIT; no mailbox.  One process, asyncio,
so 10,000 sessions cost it little (Dovecot runs a process per session).
Prints "PLAIN_PORT TLS_PORT" and then, every second, the sessions logged
in and the NOOPs answered so far, until killed.

    python3 server.py CERT KEY
"""
import asyncio
import ssl
import sys

logged = [0]
noops = [0]


async def session(reader, writer):
    writer.write(b"+OK idle bench server\r\n")
    authed = False
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            cmd = line.split(b" ", 1)[0].strip().upper()
            if cmd == b"CAPA":
                writer.write(b"+OK\r\nUSER\r\nPIPELINING\r\n.\r\n")
            elif cmd == b"USER":
                writer.write(b"+OK\r\n")
            elif cmd == b"PASS":
                writer.write(b"+OK logged in\r\n")
                if not authed:
                    authed = True
                    logged[0] += 1
            elif cmd == b"NOOP":
                noops[0] += 1
                writer.write(b"+OK\r\n")
            elif cmd == b"QUIT":
                writer.write(b"+OK bye\r\n")
                break
            else:
                writer.write(b"-ERR not here\r\n")
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        if authed:
            logged[0] -= 1
        writer.close()


async def main():
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    plain = await asyncio.start_server(session, "127.0.0.1", 0, backlog=4096)
    tls = await asyncio.start_server(session, "127.0.0.1", 0, ssl=ctx, backlog=4096)
    print(plain.sockets[0].getsockname()[1], tls.sockets[0].getsockname()[1], flush=True)
    while True:
        await asyncio.sleep(1)
        print("logged", logged[0], "noops", noops[0], flush=True)


asyncio.run(main())

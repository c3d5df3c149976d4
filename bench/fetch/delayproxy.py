#!/usr/bin/env python3
"""A TCP proxy for the fetch bench: 127.0.0.1 only, adds DELAY ms to every
chunk in each direction (so a request/reply round trip costs 2*DELAY more),
keeping byte order.  Prints the port it listens on, then serves until killed.

    python3 delayproxy.py TARGET_PORT [DELAY_MS]
"""
import asyncio
import sys


async def pump(reader, writer, delay):
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    async def send():
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                writer.write_eof() if writer.can_write_eof() else writer.close()
                return
            writer.write(data)
            await writer.drain()

    sender = asyncio.ensure_future(send())
    try:
        while True:
            data = await reader.read(65536)
            # Each chunk leaves DELAY after it arrived: a fixed one-way latency.
            queue.put_nowait((loop.time() + delay, data))
            if not data:
                break
        await sender
    except (ConnectionError, asyncio.CancelledError):
        sender.cancel()
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def main():
    target = int(sys.argv[1])
    delay = (float(sys.argv[2]) if len(sys.argv) > 2 else 50.0) / 1000.0

    async def handle(cr, cw):
        try:
            sr, sw = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            cw.close()
            return
        await asyncio.gather(pump(cr, sw, delay), pump(sr, cw, delay), return_exceptions=True)

    # A listen queue for a thousand connects at once (the accounts bench):
    # with asyncio's default of 100, connections the queue dropped looked
    # connected to the client, which then waited for a greeting that
    # never came (TcpExtListenOverflows).
    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())

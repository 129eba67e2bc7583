"""Many kept-alive clients, and slowloris, for scripts/bench (issue 15). One asyncio process drives
every socket, so 10,000 connections cost the client little.

  many_clients.py clients --url http://127.0.0.1:PORT --path /healthz --clients 1000 --interval 1 \
      --duration 10 --pids PID --server proxy --out clients.tsv
      N clients, each on its own kept-alive connection, each sending one request every INTERVAL seconds
      (at a random phase) for DURATION seconds. A request is expected at each of its client's due
      times; its latency runs from the due time (so a late server cannot hide its lateness by making
      clients send less), and a client whose previous answer is late sends the next as soon as it
      arrives. Reported: answered/expected, p50, p99, connections held at the end, and the peak RSS
      of the server (summed over PIDS and their children: nginx's master and workers).
  many_clients.py slowloris ... --attackers 1000 --gap 3 --clients 16 --interval 0.05
      ATTACKERS connections that each send a request head one byte every GAP seconds (reconnecting
      when the server cuts them), while CLIENTS normal clients measure as above.

Clients connect from many loopback source addresses (127.1.x.y, --per-address each), as sandboxes
reach the proxy from many machines: a per-peer connection cap is not what is measured here.
One TSV row is appended to --out per run:
  scenario server clients answered expected p50_ms p99_ms held rss_mib note
Everything is bounded: connects time out, and every wait ends by DURATION + a grace period.
"""

import argparse
import asyncio
import os
import random
import resource
import sys
import time
import urllib.parse


def raise_nofile(needed):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        sys.exit(f"many_clients: RLIMIT_NOFILE is {soft} (hard {hard}); {needed} sockets need more "
                 "(raise the hard limit: ulimit -Hn, or /etc/security/limits.conf)")


def rss_mib(pids):
    """Summed RSS of PIDS and their direct children, in MiB."""
    seen = set()
    todo = list(pids)
    total = 0
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    todo += [int(x) for x in f.read().split()]
        except (OSError, ValueError):
            pass
    return total / 1024


def source_address(i, per_address):
    n = i // per_address
    return f"127.1.{n // 250}.{n % 250 + 1}"


class Conn(asyncio.Protocol):
    """One kept-alive connection that reads HTTP/1.1 answers with a Content-Length."""

    def __init__(self):
        self.transport = None
        self.buf = b""
        self.waiter = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc):
        if not self.closed.done():
            self.closed.set_result(True)
        if self.waiter and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("closed by the server"))

    def data_received(self, data):
        self.buf += data
        self._parse()

    def _parse(self):
        if not self.waiter or self.waiter.done():
            return
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buf[:end].decode("latin-1")
        length = 0
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if len(self.buf) < end + 4 + length:
            return
        self.buf = self.buf[end + 4 + length:]
        self.waiter.set_result(int(head.split(" ", 2)[1]))

    async def request(self, wire):
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(wire)
        self._parse()
        return await self.waiter


async def connect(host, port, source, timeout, factory=Conn):
    loop = asyncio.get_running_loop()
    _, proto = await asyncio.wait_for(
        loop.create_connection(factory, host, port, local_addr=(source, 0)), timeout)
    return proto


def percentile(sorted_values, p):
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p))]


async def measure(conns, wire, interval, duration, grace):
    """Drives the open clients; returns (expected, answered, latencies in ms sorted, errors)."""
    loop = asyncio.get_running_loop()
    # A second for every client's task to be scheduled before the first is due (10,000 take a while).
    start = loop.time() + 1.0
    end = start + duration
    stats = {"expected": 0, "answered": 0, "errors": 0}
    lat = []

    async def client(conn):
        due = start + random.random() * interval
        while due < end:
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            stats["expected"] += 1
            if conn is None or conn.transport.is_closing():
                stats["errors"] += 1
                due += interval
                continue
            try:
                status = await conn.request(wire)
            except ConnectionError:
                stats["errors"] += 1
                due += interval
                continue
            if status == 200:
                stats["answered"] += 1
                lat.append((loop.time() - due) * 1000)
            else:
                stats["errors"] += 1
            due += interval

    async def watchdog():
        # Answers still missing GRACE seconds after the end are failures: their connections are cut
        # (one timer for all, not one per request: the client must stay cheap at 10,000 sockets).
        await asyncio.sleep(end + grace - loop.time())
        for c in conns:
            if c and c.waiter and not c.waiter.done():
                c.transport.abort()

    dog = asyncio.ensure_future(watchdog())
    await asyncio.gather(*(client(c) for c in conns))
    dog.cancel()
    lat.sort()
    return stats["expected"], stats["answered"], lat, stats["errors"]


async def sample_rss(pids, out, stop):
    while not stop.is_set():
        out.append(rss_mib(pids))
        try:
            await asyncio.wait_for(stop.wait(), 0.5)
        except asyncio.TimeoutError:
            pass


class Loris(asyncio.Protocol):
    def __init__(self):
        self.closed = asyncio.get_running_loop().create_future()
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        pass

    def connection_lost(self, exc):
        if not self.closed.done():
            self.closed.set_result(True)


async def slowloris(host, port, n, gap, per_address, until, counts):
    """n connections trickling a head, one byte per GAP seconds, reconnecting when cut, until `until`."""
    loop = asyncio.get_running_loop()
    head = f"GET /healthz HTTP/1.1\r\nHost: {host}\r\nX-Slow: ".encode()

    async def one(i):
        await asyncio.sleep(random.random() * gap)
        while loop.time() < until:
            try:
                proto = await connect(host, port, source_address(i, per_address), 10, Loris)
            except (OSError, asyncio.TimeoutError):
                counts["connect_failures"] += 1
                await asyncio.sleep(gap)
                continue
            counts["connections"] += 1
            k = 0
            while loop.time() < until and not proto.closed.done():
                # The first bytes at once (a request has started), then one byte per gap.
                proto.transport.write(head[:16] if k == 0 else (head[15 + k:16 + k] or b"a"))
                k += 1
                try:
                    await asyncio.wait_for(asyncio.shield(proto.closed), gap)
                except asyncio.TimeoutError:
                    pass
            if proto.closed.done():
                counts["cut"] += 1
            proto.transport.abort()

    await asyncio.gather(*(one(i) for i in range(n)))


def row(args, expected, answered, lat, held, rss, note):
    p50, p99 = percentile(lat, 0.50), percentile(lat, 0.99)
    line = (f"{args.scenario}\t{args.server}\t{args.clients}\t{answered}\t{expected}\t{p50:.2f}\t{p99:.2f}\t"
            f"{held}\t{rss:.0f}\t{note}")
    with open(args.out, "a") as f:
        f.write(line + "\n")
    print(line)


async def main_async(args):
    url = urllib.parse.urlsplit(args.url)
    host, port = url.hostname, url.port
    wire = (f"GET {args.path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n").encode()
    pids = [int(p) for p in args.pids.split(",") if p]
    loop = asyncio.get_running_loop()
    counts = {"connections": 0, "cut": 0, "connect_failures": 0}
    attack = None
    if args.cmd == "slowloris":
        # The attack first, so the measured clients arrive on a server already under it.
        until = loop.time() + args.gap * 2 + args.duration + 2
        attack = asyncio.ensure_future(slowloris(host, port, args.attackers, args.gap, args.per_address,
                                                 until, counts))
        await asyncio.sleep(args.gap * 2)
    t0 = time.monotonic()
    first = args.attackers if args.cmd == "slowloris" else 0  # the measured clients' own addresses
    conns = await open_clients(host, port, wire, args.clients, first, args.per_address, args.connect_timeout)
    connect_s = time.monotonic() - t0
    opened = sum(1 for c in conns if c)
    rss = []
    stop = asyncio.Event()
    sampler = asyncio.ensure_future(sample_rss(pids, rss, stop))
    expected, answered, lat, errors = await measure(conns, wire, args.interval, args.duration, args.grace)
    held = sum(1 for c in conns if c and not c.transport.is_closing())
    stop.set()
    await sampler
    peak = max(rss) if rss else 0.0
    for c in conns:
        if c:
            c.transport.abort()
    if attack:
        await attack
        note = (f"{args.attackers} slowloris connections (one head byte per {args.gap:g} s): "
                f"{counts['connections']} opened, {counts['cut']} cut by the server, "
                f"{counts['connect_failures']} connects failed; {args.clients} clients at "
                f"{1 / args.interval:g} req/s each")
    else:
        note = (f"{opened} of {args.clients} connected and answered once in {connect_s:.1f} s; one request per "
                f"{args.interval:g} s each for {args.duration:g} s; {errors} failed or late past the end")
    row(args, expected, answered, lat, held, peak, note)


async def open_clients(host, port, wire, n, first, per_address, timeout):
    """n connections from the source addresses after the first `first` ones (the attackers'), at most
    256 connects at a time, each answered once; failures are counted, not raised."""
    offset = -(-first // per_address) * per_address
    sem = asyncio.Semaphore(256)

    async def one(i):
        async with sem:
            try:
                conn = await connect(host, port, source_address(offset + i, per_address), timeout)
                # A client connects because it has a request: the first goes at once (not measured),
                # so every connection is idle between requests, as kept-alive SDK connections are.
                if await asyncio.wait_for(conn.request(wire), timeout) != 200:
                    conn.transport.abort()
                    return None
                return conn
            except (OSError, asyncio.TimeoutError):
                return None

    return await asyncio.gather(*(one(i) for i in range(n)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmd", choices=["clients", "slowloris"])
    ap.add_argument("--url", required=True)
    ap.add_argument("--path", default="/healthz")
    ap.add_argument("--clients", type=int, required=True)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--grace", type=float, default=5.0)
    ap.add_argument("--attackers", type=int, default=0)
    ap.add_argument("--gap", type=float, default=3.0)
    ap.add_argument("--per-address", type=int, default=25)
    ap.add_argument("--connect-timeout", type=float, default=30.0)
    ap.add_argument("--pids", default="")
    ap.add_argument("--server", required=True)
    ap.add_argument("--scenario", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    raise_nofile(args.clients + args.attackers + 100)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A 1 GiB R2 round trip through the Python SDK, with the proxy's peak memory measured.

    ERA_PROXY_BIN=build/era-storage-proxy python3 tests/e2e/r2_big.py [--size-mib 1024]

Streams 1 GiB of pseudo-random bytes up (sent with its Content-Length, 1 MiB per send) and back
down, hashing both sides, then reads the proxy's peak resident set size (VmHWM in /proc/PID/status).
Fails unless the download is byte-exact and the peak stays under 64 MiB. ctest runs it once as
e2e_r2_1gib; the figure it prints goes to docs/benchmarks.md. Prints 'N passed, N failed' last.
"""

import argparse
import hashlib
import io
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Proxy  # noqa: E402

import era_storage  # noqa: E402

LIMIT_KIB = 64 * 1024


class PseudoRandomFile(io.RawIOBase):
    """`size` bytes that differ in every MiB, made on the fly: the test holds no more than one MiB."""

    def __init__(self, size):
        self.size, self.pos = size, 0
        self.block = os.urandom(1 << 20)

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self.pos

    def seek(self, offset, whence=0):
        self.pos = offset if whence == 0 else self.size + offset if whence == 2 else self.pos + offset
        return self.pos

    def read(self, n=-1):
        n = min(self.size - self.pos, 1 << 20 if n is None or n < 0 else n)
        start = self.pos % (1 << 20)
        n = min(n, (1 << 20) - start)  # stay within one block: one block plus a counter per MiB
        mib = (self.pos >> 20).to_bytes(8, "little")
        chunk = bytearray(self.block[start:start + n])
        for i in range(min(8, n) if start == 0 else 0):
            chunk[i] ^= mib[i]
        self.pos += n
        return bytes(chunk)


def peak_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    size = parser.parse_args().size_mib << 20
    with Proxy() as proxy:
        os.environ["ERA_STORAGE_URL"] = proxy.url
        src = PseudoRandomFile(size)
        sent = hashlib.md5()
        reader = src.read

        def hashing_read(n=-1):
            chunk = reader(n)
            sent.update(chunk)
            return chunk

        src.read = hashing_read
        t0 = time.monotonic()
        info = era_storage.r2.put("bench", "big.bin", src)
        t1 = time.monotonic()
        got = hashlib.md5()
        received = 0
        with era_storage.r2.open("bench", "big.bin") as obj:
            for chunk in obj:
                got.update(chunk)
                received += len(chunk)
        t2 = time.monotonic()
        peak = peak_kib(proxy.proc.pid)
        ok = received == size and got.hexdigest() == sent.hexdigest() == info["etag"] and peak < LIMIT_KIB
        print(f"size {size} bytes: put {t1 - t0:.1f} s ({size / (t1 - t0) / 2**20:.0f} MiB/s), "
              f"get {t2 - t1:.1f} s ({size / (t2 - t1) / 2**20:.0f} MiB/s), byte-exact "
              f"{received == size and got.hexdigest() == sent.hexdigest()}, etag matches {info['etag'] == sent.hexdigest()}, "
              f"proxy peak RSS (VmHWM) {peak / 1024:.1f} MiB (limit 64 MiB)")
        era_storage.r2.delete("bench", "big.bin")
    print(f"{int(ok)} passed, {int(not ok)} failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

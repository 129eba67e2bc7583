#!/usr/bin/env python3
"""Runs a command against Cloudflare's emulator: starts wrangler/emulator.mjs (Miniflare: KV and D1
REST, R2 S3) on a free loopback port, runs the command with ERA_TEST_BACKEND=cloudflare and every
ERA_CF_* setting pointing at it (the e2e harness passes them on to the proxy), stops the emulator,
and exits with the command's status.

    python3 tests/e2e/with_emulator.py python3 -m unittest discover -s tests/e2e -p "test_*.py"
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cf_emulator import Emulator  # noqa: E402


def main(argv):
    if not argv:
        print(__doc__)
        return 2
    with Emulator() as emu:
        env = dict(os.environ, **emu.proxy_env(), ERA_TEST_BACKEND="cloudflare")
        print(f"with_emulator: Cloudflare emulator on {emu.info['base']}", flush=True)
        return subprocess.run(argv, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""Runs the guide's examples against a freshly started proxy.

    python3 tests/e2e/run_conformance.py [--backend local] [--auth]

--auth: the proxy requires tokens (auth.mode = "token" with an admin credential), and the scripts run
with a session token of scope "*" in ERA_STORAGE_TOKEN, as a sandbox would.

The project's own scripts (tests/e2e/guide/, Python and JavaScript: every example of the guide) always
run. The shared conformance scripts in ../shared/conformance beside the repository (ERA_SHARED_DIR
overrides) run as an extra check when that folder exists, and are skipped, saying so, when it does not.
Prints the scripts' output and one closing 'N passed, N failed' line.
"""

import argparse
import os
import re
import secrets
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def session_token(proxy, admin):
    """A session of scope "*" created by the admin; None (and why) if auth is not really on."""
    status, doc = proxy.call("GET", "/api/storage/kv/conformance")
    if status != 401:
        print(f"--auth: a call without a token got {status}, not 401: auth is not on")
        return None
    status, doc = proxy.call("POST", "/api/sessions", {"language": "python", "namespaces": "*"},
                             {"Authorization": f"Bearer {admin}"})
    if status != 201:
        print(f"--auth: creating the session failed: {status} {doc}")
        return None
    return doc["token"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default=os.environ.get("ERA_TEST_BACKEND", "local"))
    parser.add_argument("--auth", action="store_true", help="require tokens; run with a session token")
    args = parser.parse_args()
    os.environ["ERA_TEST_BACKEND"] = args.backend
    shared = os.environ.get("ERA_SHARED_DIR") or os.path.join(os.path.dirname(harness.ROOT), "shared")
    conformance = os.path.join(shared, "conformance")
    guide = os.path.join(harness.ROOT, "tests", "e2e", "guide")
    scripts = [["python3", os.path.join(guide, "guide_examples.py")],
               ["node", os.path.join(guide, "guide_examples.js")]]
    if os.path.isdir(conformance):
        scripts += [["python3", os.path.join(conformance, "seed_examples.py")],
                    ["node", os.path.join(conformance, "seed_examples.js")]]
    else:
        print(f"note: no shared conformance scripts in {conformance}: skipping that extra check "
              "(the project's own guide examples still run)")
    passed = failed = 0
    admin = secrets.token_hex(24)
    proxy_args, proxy_env = (["--auth", "token"], {"ERA_ADMIN_TOKEN": admin}) if args.auth else ([], None)
    with harness.Proxy(proxy_args, proxy_env) as proxy:
        env = dict(os.environ, ERA_STORAGE_URL=proxy.url,
                   PYTHONPATH=os.path.join(harness.ROOT, "sdk", "python"),
                   ERA_STORAGE_SDK=os.path.join(harness.ROOT, "sdk", "js", "era_storage.js"))
        env.pop("ERA_STORAGE_TOKEN", None)
        if args.auth:
            token = session_token(proxy, admin)
            if token is None:
                print("0 passed, 1 failed")
                return 1
            env["ERA_STORAGE_TOKEN"] = token
            env["ERA_GUIDE_ADMIN_TOKEN"] = admin
        for cmd in scripts:
            mode = args.backend + (", auth" if args.auth else "")
            print(f"== {' '.join(os.path.basename(c) for c in cmd)} ({mode})", flush=True)
            out = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
            text = out.stdout.decode(errors="replace")
            print(text, flush=True)
            m = re.search(r"(\d+) passed, (\d+) failed", text)
            if m:
                passed += int(m.group(1))
                failed += int(m.group(2))
            if out.returncode != 0 and not (m and int(m.group(2))):
                failed += 1
        if failed:
            print("--- proxy log (tail) ---")
            print(proxy.log()[-3000:])
    print(f"conformance: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

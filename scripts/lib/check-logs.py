#!/usr/bin/env python3
"""Fail when a log of the e2e servers holds a secret the tests used.

    scripts/lib/check-logs.py DIR

DIR holds the servers' logs (`*.log`, written by the e2e harness) and
`secrets.txt` (every client secret and access token the tests obtained, one per
line). Also refused anywhere in a log: anything shaped like a JWT (a token that
was not noted), and `Authorization:` / `Bearer ` values.
"""
import pathlib
import re
import sys

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
BEARER = re.compile(r"Bearer\s+[A-Za-z0-9._~+/-]{16,}")


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    root = pathlib.Path(sys.argv[1])
    secrets_file = root / "secrets.txt"
    secrets = set()
    if secrets_file.exists():
        secrets = {s.strip() for s in secrets_file.read_text().splitlines() if len(s.strip()) >= 8}
    logs = sorted(root.glob("*.log"))
    if not logs:
        print(f"check-logs: no logs under {root}", file=sys.stderr)
        return 1
    leaks = []
    size = 0
    for log in logs:
        text = log.read_text(errors="replace")
        size += len(text)
        for s in secrets:
            if s in text:
                leaks.append(f"{log.name}: a secret the tests used ({s[:6]}…)")
        for m in JWT.finditer(text):
            leaks.append(f"{log.name}: a JWT ({m.group(0)[:12]}…)")
        for m in BEARER.finditer(text):
            leaks.append(f"{log.name}: a bearer token ({m.group(0)[:14]}…)")
    if leaks:
        print("check-logs: secrets in the servers' logs:", file=sys.stderr)
        for line in leaks[:50]:
            print(f"  {line}", file=sys.stderr)
        return 1
    print(f"check-logs: {len(logs)} logs ({size // 1024} KiB), {len(secrets)} secrets: none found")
    return 0


if __name__ == "__main__":
    sys.exit(main())

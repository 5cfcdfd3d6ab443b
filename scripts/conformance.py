#!/usr/bin/env python3
"""Run the scim2-tester conformance checks against a SCIM server and count the results.

Usage:
    .venv/bin/python scripts/conformance.py URL [--token T] [--header 'K: V'] [--trace FILE]

URL is the SCIM base, e.g. http://127.0.0.1:8080/scim/v2 . The bearer token may also come
from SCIMD_CONFORMANCE_TOKEN. Prints one line per check result, then exactly
``conformance: N passed, M failed`` as the last line, and exits 1 when M > 0
(2 when the server cannot be reached at all).

Counting (see docs/conformance.md):
  passed  = SUCCESS, COMPLIANT, ACCEPTABLE (all mean "conforms").
  failed  = ERROR, CRITICAL, DEVIATION, and every SKIPPED result that is not on the
            allow-list below.
  allowed skips are printed as SKIP and counted in neither number (they are reported on
  the line before the summary). The only default allowed skip is the server answering
  501 to a server-root ``POST /.search`` (RFC 7644 §3.4.3 makes root search a MAY).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from typing import Any

try:
    import httpx2
    from scim2_client.engines.httpx2 import SyncSCIMClient
    from scim2_tester import Status, check_server
except ImportError as exc:  # pragma: no cover
    print(f"conformance: missing Python packages ({exc}); run scripts/setup-python.sh")
    print("conformance: 0 passed, 1 failed")
    sys.exit(2)

# Skips that are legitimate for a conforming server (regexes on the result reason).
DEFAULT_ALLOWED_SKIPS = [
    r"POST /\.search: searching several resource types at once is not supported",
]

PASS_STATUSES = {Status.SUCCESS, Status.COMPLIANT, Status.ACCEPTABLE}


def one_line(text: Any, limit: int | None = None) -> str:
    s = str(text).replace("\r", "").replace("\n", " | ")
    s = re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", "?", s)
    if limit and len(s) > limit:
        s = s[:limit] + "…"
    return s


def describe_data(data: Any) -> str:
    """Best-effort compact rendering of a result's debugging data."""
    if data is None:
        return ""
    text = getattr(data, "text", None)  # an httpx response
    if isinstance(text, str):
        status = getattr(data, "status_code", "?")
        return f"HTTP {status} {text}"
    if isinstance(data, dict):
        parts = []
        for k, v in data.items():
            if hasattr(v, "model_dump"):
                try:
                    v = v.model_dump(mode="json", by_alias=True, exclude_none=True)
                except Exception:  # noqa: BLE001
                    pass
            elif isinstance(v, list):
                v = [
                    x.model_dump(mode="json", by_alias=True, exclude_none=True)
                    if hasattr(x, "model_dump")
                    else x
                    for x in v
                ]
            try:
                parts.append(f"{k}={json.dumps(v, default=str)}")
            except Exception:  # noqa: BLE001
                parts.append(f"{k}={v!r}")
        return " ".join(parts)
    if hasattr(data, "model_dump"):
        try:
            return json.dumps(
                data.model_dump(mode="json", by_alias=True, exclude_none=True),
                default=str,
            )
        except Exception:  # noqa: BLE001
            pass
    return repr(data)


class Tracer:
    """Write every request/response pair to a file (httpx event hook)."""

    def __init__(self, path: str):
        self.fh = open(path, "w", encoding="utf-8")  # noqa: SIM115
        self.n = 0

    def on_response(self, response: Any) -> None:
        response.read()
        req = response.request
        self.n += 1
        body = req.content.decode("utf-8", "replace") if req.content else ""
        self.fh.write(f"### {self.n} {req.method} {req.url}\n")
        if body:
            self.fh.write(f">>> {body}\n")
        ctype = response.headers.get("content-type", "")
        loc = response.headers.get("location")
        etag = response.headers.get("etag")
        extra = "".join(
            f" {k}={v}" for k, v in (("location", loc), ("etag", etag)) if v
        )
        self.fh.write(f"<<< {response.status_code} content-type={ctype}{extra}\n")
        if response.text:
            self.fh.write(f"<<< {response.text}\n")
        self.fh.write("\n")
        self.fh.flush()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("url", help="SCIM base URL, e.g. http://127.0.0.1:8080/scim/v2")
    ap.add_argument("--token", default=os.environ.get("SCIMD_CONFORMANCE_TOKEN"),
                    help="bearer token (default: $SCIMD_CONFORMANCE_TOKEN)")
    ap.add_argument("--header", action="append", default=[],
                    help="extra request header 'Name: value' (repeatable)")
    ap.add_argument("--trace", help="write every HTTP exchange to this file")
    ap.add_argument("--allow-skip", action="append", default=[], metavar="REGEX",
                    help="treat SKIPPED results whose reason matches REGEX as allowed")
    ap.add_argument("--strict-skips", action="store_true",
                    help="count every SKIPPED result as a failure (no allow-list)")
    ap.add_argument("--resource-type", action="append", default=None,
                    help="only test this resource type (repeatable)")
    ap.add_argument("--timeout", type=float, default=15.0, help="per-request timeout (s)")
    ap.add_argument("-q", "--quiet", action="store_true",
                    help="print only failures and the summary")
    args = ap.parse_args()

    url = args.url.rstrip("/")
    headers = {"Accept": "application/scim+json"}
    if args.token:
        headers["Authorization"] = f"Bearer {args.token}"
    for h in args.header:
        if ":" not in h:
            ap.error(f"bad --header {h!r}, expected 'Name: value'")
        k, v = h.split(":", 1)
        headers[k.strip()] = v.strip()

    allowed = [] if args.strict_skips else DEFAULT_ALLOWED_SKIPS + args.allow_skip
    allowed_re = [re.compile(p) for p in allowed]

    hooks: dict[str, list[Any]] = {}
    tracer = None
    if args.trace:
        tracer = Tracer(args.trace)
        hooks["response"] = [tracer.on_response]

    http = httpx2.Client(base_url=url, headers=headers, timeout=args.timeout,
                         event_hooks=hooks, trust_env=False)

    # Pre-flight: fail clearly when nothing answers, instead of a cascade of errors.
    try:
        pre = http.get("/ServiceProviderConfig")
    except Exception as exc:  # noqa: BLE001  (httpx2 connection/timeout errors)
        print(f"conformance: cannot reach {url}/ServiceProviderConfig: "
              f"{type(exc).__name__}: {one_line(exc, 300)}")
        print("conformance: 0 passed, 1 failed")
        return 2
    if pre.status_code in (401, 403):
        print(f"conformance: {url}/ServiceProviderConfig answered {pre.status_code}; "
              "pass --token (or SCIMD_CONFORMANCE_TOKEN)")

    client = SyncSCIMClient(http)
    started = time.monotonic()
    try:
        results = check_server(client, resource_types=args.resource_type)
    except Exception as exc:  # noqa: BLE001  (a tester crash is a failure, not a pass)
        print(f"conformance: the checker crashed: {type(exc).__name__}: {one_line(exc, 500)}")
        print("conformance: 0 passed, 1 failed")
        return 1
    elapsed = time.monotonic() - started

    passed = failed = skipped_ok = 0
    for r in results:
        who = f"{r.resource_type}/" if r.resource_type else ""
        name = f"{who}{r.title or '?'}"
        reason = one_line(r.reason or "", 400)
        if r.status in PASS_STATUSES:
            passed += 1
            if not args.quiet:
                print(f"PASS  {name}" + (f": {reason}" if reason else ""))
            continue
        if r.status == Status.SKIPPED and any(p.search(r.reason or "") for p in allowed_re):
            skipped_ok += 1
            print(f"SKIP  {name}: {reason} (allowed)")
            continue
        failed += 1
        print(f"FAIL  {name} [{r.status.name}]: {reason}")
        detail = describe_data(r.data)
        if detail:
            print(f"        data: {one_line(detail, 1200)}")

    if not results:
        failed += 1
        print("FAIL  check_server returned no result")
    if tracer:
        print(f"conformance: {tracer.n} HTTP exchanges traced to {args.trace}")
    print(f"conformance: {len(results)} results in {elapsed:.1f}s; "
          f"{skipped_ok} allowed skip(s) not counted")
    print(f"conformance: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The soak's load and its checks (driven by scripts/soak.sh).

    soak.py load URL SECONDS STATE.json      mixed load; writes what was acknowledged
    soak.py check URL STATE.json             every acknowledged write is there

The load: THREADS workers for SECONDS, each owning the users it creates, so that the
last acknowledged write of every user is known. Each first creates PRELOAD users,
then runs a steady mix in which the directory keeps its size (as many creates as
deletes), so that memory can be judged flat or not: 50 % reads (GET by id,
userName eq, a co filter, a sorted page), 10 % creates, 30 % PATCH of nickName,
10 % deletes. A request that fails (the server was killed, refused connections
while it restarts) is not acknowledged and is not counted as written; workers wait
and go on.
"""
import http.client
import json
import random
import sys
import threading
import time
import urllib.parse

THREADS = 8
PRELOAD = 2500
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


class Conn:
    def __init__(self, url):
        u = urllib.parse.urlparse(url)
        self.host, self.port = u.hostname, u.port
        self.c = None

    def send(self, method, path, body=None):
        """(status, parsed body) or (None, error) when the server did not answer."""
        try:
            if self.c is None:
                self.c = http.client.HTTPConnection(self.host, self.port, timeout=30)
            data = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": "application/scim+json"} if data else {}
            self.c.request(method, path, body=data, headers=headers)
            r = self.c.getresponse()
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)
        except (OSError, http.client.HTTPException, ValueError) as e:
            if self.c is not None:
                self.c.close()
            self.c = None
            return None, str(e)


def worker(n, url, until, out, stats, lock):
    conn = Conn(url)
    rng = random.Random(n)
    mine = {}  # id -> {"userName", "nick"}
    gone = set()
    counter = 0
    while time.time() < until:
        roll = rng.random()
        live = list(mine)
        if counter < PRELOAD:
            roll = 0.0
        if roll < 0.10 or not live:
            counter += 1
            name = f"soak-{n}-{counter}"
            st, body = conn.send("POST", "/scim/v2/Users", {"schemas": [USER], "userName": name, "nickName": "n0"})
            if st == 201:
                mine[body["id"]] = {"userName": name, "nick": "n0"}
            kind = "create"
        elif roll < 0.40:
            uid = rng.choice(live)
            nick = f"n{rng.randrange(1_000_000)}"
            st, _ = conn.send("PATCH", f"/scim/v2/Users/{uid}", {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "nickName", "value": nick}]})
            if st == 200:
                mine[uid]["nick"] = nick
            kind = "patch"
        elif roll < 0.50:
            uid = rng.choice(live)
            st, _ = conn.send("DELETE", f"/scim/v2/Users/{uid}")
            if st == 204:
                gone.add(uid)
                del mine[uid]
            kind = "delete"
        else:
            uid = rng.choice(live)
            pick = rng.random()
            if pick < 0.4:
                st, _ = conn.send("GET", f"/scim/v2/Users/{uid}")
            elif pick < 0.7:
                q = urllib.parse.quote(f'userName eq "{mine[uid]["userName"]}"')
                st, _ = conn.send("GET", f"/scim/v2/Users?filter={q}")
            elif pick < 0.85:
                q = urllib.parse.quote(f'userName co "oak-{n}-{rng.randrange(1, counter + 1)}"')
                st, _ = conn.send("GET", f"/scim/v2/Users?filter={q}&count=10")
            else:
                st, _ = conn.send("GET", f"/scim/v2/Users?sortBy=userName&count=50&startIndex={rng.randrange(1, 500)}")
            kind = "read"
        with lock:
            key = kind if st is not None else "unanswered"
            stats[key] = stats.get(key, 0) + 1
            if st is not None and st >= 500:
                stats["5xx"] = stats.get("5xx", 0) + 1
        if st is None:
            time.sleep(0.05)
    with lock:
        out["live"].update(mine)
        out["deleted"].extend(gone)


def load(url, seconds, state):
    until = time.time() + float(seconds)
    out = {"live": {}, "deleted": []}
    stats = {}
    lock = threading.Lock()
    threads = [threading.Thread(target=worker, args=(n, url, until, out, stats, lock)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out["stats"] = stats
    with open(state, "w") as f:
        json.dump(out, f)
    print(f"soak: load done: {json.dumps(stats, sort_keys=True)}; {len(out['live'])} users live, {len(out['deleted'])} deleted")


def check(url, state):
    with open(state) as f:
        s = json.load(f)
    conn = Conn(url)
    wrong = []
    for uid, want in s["live"].items():
        st, body = conn.send("GET", f"/scim/v2/Users/{uid}")
        if st != 200:
            wrong.append(f"{uid}: {st} (acknowledged, should exist)")
        elif body.get("nickName") != want["nick"] or body.get("userName") != want["userName"]:
            wrong.append(f"{uid}: nickName {body.get('nickName')!r}, acknowledged {want['nick']!r}")
    for uid in s["deleted"]:
        st, _ = conn.send("GET", f"/scim/v2/Users/{uid}")
        if st != 404:
            wrong.append(f"{uid}: {st} (acknowledged delete)")
    checked = len(s["live"]) + len(s["deleted"])
    if wrong:
        print(f"soak: {len(wrong)} of {checked} acknowledged writes wrong:", file=sys.stderr)
        for w in wrong[:20]:
            print(f"  {w}", file=sys.stderr)
        return 1
    print(f"soak: all {checked} acknowledged writes found as written ({len(s['live'])} users, {len(s['deleted'])} deletions)")
    return 0


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "load" and len(sys.argv) == 5:
        load(sys.argv[2], sys.argv[3], sys.argv[4])
        return 0
    if len(sys.argv) >= 2 and sys.argv[1] == "check" and len(sys.argv) == 4:
        return check(sys.argv[2], sys.argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Where a scimd SQLite database's bytes go: each table with its indexes, and
bytes per user (the `users` argument, or the User count in type_counts).

    python3 scripts/lib/db-size.py DATA_DIR/scimd.db [USERS]

Reads the file's b-trees with SQLite's dbstat table (read-only; safe on a
stopped server's database)."""
import sqlite3
import sys

path = sys.argv[1]
db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
owner = {name: tbl for name, tbl in db.execute("SELECT name, tbl_name FROM sqlite_schema")}
sizes = {}
for name, size in db.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
    table = owner.get(name, name)
    # FTS5 keeps its index in shadow tables named after the virtual table.
    for shadow in ("_data", "_idx", "_config", "_docsize", "_content"):
        if table.endswith(shadow) and table[: -len(shadow)] in owner:
            table = table[: -len(shadow)]
    own, idx = sizes.get(table, (0, 0))
    if name == table or owner.get(name) == name:
        own += size
    else:
        idx += size
    sizes[table] = (own, idx)
if len(sys.argv) > 2:
    users = int(sys.argv[2])
else:
    users = db.execute("SELECT coalesce(sum(n), 0) FROM type_counts WHERE rtype = 'User'").fetchone()[0]
users = max(users, 1)
total = sum(a + b for a, b in sizes.values())
print(f"{'table':<22} {'table MB':>9} {'indexes MB':>11} {'bytes/user':>11}")
for table, (own, idx) in sorted(sizes.items(), key=lambda kv: -(kv[1][0] + kv[1][1])):
    if own + idx < 65536:
        continue
    print(f"{table:<22} {own / 1e6:>9.1f} {idx / 1e6:>11.1f} {(own + idx) / users:>11.0f}")
print(f"{'all':<22} {total / 1e6:>21.1f} MB {total / users:>11.0f}   ({users} users)")

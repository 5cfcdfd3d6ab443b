"""Print an access token from a scimd token endpoint (client_credentials).

Usage: get-token.py TOKEN_URL CLIENT_JSON   (CLIENT_JSON as printed by
`scimd clients create --json`).
"""
import base64
import json
import sys
import urllib.parse
import urllib.request

client = json.loads(sys.argv[2])
basic = base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode()).decode()
req = urllib.request.Request(
    sys.argv[1],
    data=urllib.parse.urlencode({"grant_type": "client_credentials"}).encode(),
    headers={"Authorization": f"Basic {basic}",
             "Content-Type": "application/x-www-form-urlencoded"},
)
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
with opener.open(req, timeout=10) as r:
    print(json.load(r)["access_token"])

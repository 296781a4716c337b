#!/usr/bin/env python3
"""A webhook receiver for tests/e2e/ops/webhooks.rs.

Listens on 127.0.0.1:PORT (0: any; the port is printed as the first line), checks each request's content type and
`X-Wharf-Signature` (HMAC-SHA256 of the body under SECRET), decodes the envelope into Distribution's field names
(notifications/event.go: Envelope, Event, target Descriptor fields, RequestRecord, ActorRecord, SourceRecord) and
appends one JSON line per event to OUT: the event as decoded, with "_signature_ok" and "_request" (the POST's
number). With --hang it accepts connections and never answers.
"""

import argparse
import hashlib
import hmac
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json"

# Distribution's JSON names; the fields each event of ours must carry, by record.
EVENT = {"id": str, "timestamp": str, "action": str, "target": dict, "request": dict, "actor": dict, "source": dict}
TARGET = {"mediaType": str, "size": int, "digest": str, "length": int, "repository": str, "url": str, "tag": str}
REQUEST = {"id": str, "addr": str, "host": str, "method": str, "useragent": str}
ACTOR = {"name": str}
SOURCE = {"addr": str, "instanceID": str}
# Required everywhere (Distribution leaves the others out when empty).
ALWAYS = {"event": ["id", "timestamp", "action", "target", "request", "actor", "source"],
          "request": ["id", "method", "useragent"], "source": ["addr", "instanceID"], "target": ["repository"]}


def decode(event):
    """The event with Distribution's fields only, type-checked; raises ValueError on a misnamed or mistyped one."""
    def record(obj, fields, name):
        if not isinstance(obj, dict):
            raise ValueError(f"{name} is not an object")
        for key in ALWAYS.get(name, []):
            if key not in obj:
                raise ValueError(f"{name}.{key} missing")
        out = {}
        for key, kind in fields.items():
            if key in obj:
                if not isinstance(obj[key], kind) or isinstance(obj[key], bool):
                    raise ValueError(f"{name}.{key} is not {kind.__name__}")
                out[key] = obj[key]
        return out

    out = record(event, EVENT, "event")
    out["target"] = record(event["target"], TARGET, "target")
    out["request"] = record(event["request"], REQUEST, "request")
    out["actor"] = record(event["actor"], ACTOR, "actor")
    out["source"] = record(event["source"], SOURCE, "source")
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--hang", action="store_true")
    args = parser.parse_args()
    secret, out_path, hang = args.secret.encode(), args.out, args.hang
    lock = threading.Lock()
    count = [0]

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            if hang:
                time.sleep(3600)
                return
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
            signature_ok = hmac.compare_digest(expected, self.headers.get("x-wharf-signature", ""))
            try:
                if self.headers.get("content-type") != MEDIA_TYPE:
                    raise ValueError("content type " + str(self.headers.get("content-type")))
                envelope = json.loads(body)
                if set(envelope) != {"events"} or not envelope["events"]:
                    raise ValueError("not an envelope")
                events = [decode(e) for e in envelope["events"]]
            except (ValueError, KeyError) as e:
                self.send_response(400)
                self.end_headers()
                self.wfile.write(str(e).encode())
                with lock, open(out_path, "a") as f:
                    f.write(json.dumps({"_invalid": str(e)}) + "\n")
                return
            with lock:
                count[0] += 1
                with open(out_path, "a") as f:
                    for e in events:
                        e["_signature_ok"] = signature_ok
                        e["_request"] = count[0]
                        f.write(json.dumps(e) + "\n")
            self.send_response(200)
            self.end_headers()

    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

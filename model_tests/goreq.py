"""GOCACHEPROG requests written by hand, as the go command writes them
(cmd/go/internal/cache/prog.go, go 1.27): a JSON object per line, a blank
line after it, and for a put the body as a JSON string of base64 on the
next line.  Shared by the tests that drive the server directly."""

from __future__ import annotations

import base64
import hashlib
import json


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def get_req(id_: int, aid: bytes) -> bytes:
    """Compact, as Go's encoding/json writes it: the server's fast path."""
    return json.dumps({"ID": id_, "Command": "get", "ActionID": b64(aid)}, separators=(",", ":")).encode() + b"\n\n"


def put_req(id_: int, aid: bytes, body: bytes) -> bytes:
    """Object, newline, blank line, body line."""
    req = {"ID": id_, "Command": "put", "ActionID": b64(aid), "OutputID": b64(hashlib.sha256(body).digest()),
           "BodySize": len(body)}
    return json.dumps(req).encode() + b"\n\n" + b'"' + base64.b64encode(body) + b'"\n'


def close_req(id_: int) -> bytes:
    return json.dumps({"ID": id_, "Command": "close"}, separators=(",", ":")).encode() + b"\n\n"

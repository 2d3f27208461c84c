"""The cheapest GOCACHEPROG server Python can be: the Python floor.

    python -S -I bench/py_null_server.py TABLE

answers every get from TABLE (the ``<base64 action ID> <answer>`` lines
``bench_gobuild.answer_table`` writes for go-null), ``close`` with its ID,
and nothing else; no site, no package imported, one read and one write per
batch of requests, no check of anything.  It is ``floor_server -table``
(go-null) written in Python, so the gap between the two is what any Python
server pays on this machine over a compiled one for start-up and per
lookup, whatever its code: a measuring instrument for ``bench_gobuild``,
not part of idemwrite (the real server checks every answer it gives).
"""

import os
import sys

_GET_MIDDLE = b',"Command":"get","ActionID":"'
_CLOSE = b',"Command":"close"}'


def main(table_path: str) -> None:
    os.write(1, b'{"ID":0,"KnownCommands":["get","close"]}\n')
    with open(table_path, "rb") as f:
        table = dict(line.rstrip(b"\n").split(b" ", 1) for line in f)
    miss = b',"Miss":true}'
    pending = b""
    while True:
        data = os.read(0, 1 << 16)
        if not data:
            return
        *lines, pending = (pending + data).split(b"\n")
        out = []
        for line in lines:
            i = line.find(_GET_MIDDLE)
            if i > 0:  # the table's answers run from the comma after the ID
                out.append(line[:i] + table.get(line[i + len(_GET_MIDDLE):-2], miss) + b"\n")
            elif line.endswith(_CLOSE):
                os.write(1, b"".join(out) + line[:-len(_CLOSE)] + b"}\n")
                return
        if out:
            os.write(1, b"".join(out))


if __name__ == "__main__":
    main(sys.argv[1])
    os._exit(0)

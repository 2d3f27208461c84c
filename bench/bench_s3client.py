"""How the S3 client of ``gocacheprog --remote`` was chosen: each candidate
library against a real SeaweedFS on loopback (``model_tests/seaweed.py``).

    python -m bench.bench_s3client [--candidates obstore,botocore,boto3]

For each candidate, in a fresh Python process: the time to import it and
make a client (paid at the first remote request of every go command that
misses locally), the first PUT+GET (connection set-up), the median
latency of a 4 KiB PUT and GET over 100 sequential rounds, and 400 GETs
from 16 threads (wall and CPU time: the go command asks for many actions
at once, and on a loaded machine the server's CPU competes with the
compilers).  All sign with SigV4 in the library (none by hand).

Candidates not installed are skipped (obstore and boto3 are in the test
extra; ``botocore`` is boto3's core, used directly).  MinIO's Python SDK
was looked at and left out: its ``put_object`` (7.2.20) has no way to
send ``If-None-Match``, which the upload protocol needs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

# Runs in a child process: argv = candidate, endpoint, access key, secret, bucket.
CHILD = r'''
import os, sys, time, statistics
from concurrent.futures import ThreadPoolExecutor
which, ep, key, secret, bucket = sys.argv[1:6]
t0 = time.perf_counter()
if which in ("boto3", "botocore"):
    if which == "boto3":
        import boto3 as lib
        make = lib.client
    else:
        import botocore.session
        make = botocore.session.get_session().create_client
    from botocore.config import Config
    c = make("s3", endpoint_url=ep, aws_access_key_id=key, aws_secret_access_key=secret, region_name="us-east-1",
             config=Config(max_pool_connections=32, retries={"max_attempts": 1}))
    def get(k): return c.get_object(Bucket=bucket, Key=k)["Body"].read()
    def put(k, d): c.put_object(Bucket=bucket, Key=k, Body=d)
else:
    import obstore
    from obstore.store import S3Store
    c = S3Store(bucket, endpoint=ep, access_key_id=key, secret_access_key=secret, region="us-east-1",
                client_options={"allow_http": True})
    def get(k): return bytes(obstore.get(c, k).bytes())
    def put(k, d): obstore.put(c, k, d)
t1 = time.perf_counter()
put(f"bench/{which}/probe", b"x"); get(f"bench/{which}/probe")
t2 = time.perf_counter()
data = os.urandom(4096)
lp, lg = [], []
for i in range(100):
    a = time.perf_counter(); put(f"bench/{which}/{i}", data)
    b = time.perf_counter(); get(f"bench/{which}/{i}")
    lp.append(b - a); lg.append(time.perf_counter() - b)
cpu0, w0 = time.process_time(), time.perf_counter()
with ThreadPoolExecutor(16) as ex:
    list(ex.map(lambda i: get(f"bench/{which}/{i % 100}"), range(400)))
w1, cpu1 = time.perf_counter(), time.process_time()
print(f"{which:<9} {1000*(t1-t0):7.0f} {1000*(t2-t1):7.0f} {1000*statistics.median(lp):7.2f} "
      f"{1000*statistics.median(lg):7.2f} {1000*(w1-w0):7.0f} {1000*(cpu1-cpu0):7.0f}")
'''


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--candidates", default="obstore,botocore,boto3")
    ap.add_argument("--rounds", type=int, default=2, help="runs of each candidate (interleaved)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO / "model_tests"))
    import importlib

    seaweed: Any = importlib.import_module("seaweed")  # model_tests is not a package
    ACCESS_KEY, BUCKET, SECRET_KEY, Seaweed = seaweed.ACCESS_KEY, seaweed.BUCKET, seaweed.SECRET_KEY, seaweed.Seaweed

    print("candidate import+client(ms) first-put+get(ms) put-median(ms) get-median(ms) "
          "400-gets-x16-wall(ms) 400-gets-x16-CPU(ms)")
    with tempfile.TemporaryDirectory(prefix="bench-s3client-") as t:
        store = Seaweed(Path(t))
        try:
            for _ in range(args.rounds):
                for which in args.candidates.split(","):
                    r = subprocess.run([sys.executable, "-c", CHILD, which, store.endpoint, ACCESS_KEY, SECRET_KEY, BUCKET],
                                       capture_output=True, text=True, timeout=300)
                    print(r.stdout.strip() if r.returncode == 0 else f"{which:<9} skipped: {r.stderr.strip().splitlines()[-1]}")
        finally:
            store.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

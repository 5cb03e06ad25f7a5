"""Run moto's standalone S3-compatible server on 127.0.0.1, on a free port, until stdin closes.

Started by the tests as a child process (``python moto_launcher.py``): it
prints the port it bound, then serves until its parent closes its stdin.
"""

from __future__ import annotations

import logging
import sys

logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request log on the test output

from moto.server import ThreadedMotoServer  # noqa: E402  (after quieting werkzeug)


def main() -> None:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(server.get_host_and_port()[1], flush=True)
    sys.stdin.read()  # until the parent closes it (or dies)
    server.stop()


if __name__ == "__main__":
    main()

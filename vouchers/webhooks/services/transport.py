"""One HTTP POST to a vetted address, with a timeout, no redirects and a bounded read.

The connection goes to the address `addresses.check_url` vetted (TLS still checks
the certificate against the host name), so a second DNS answer cannot redirect it.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from dataclasses import dataclass

from vouchers.webhooks.services.addresses import Target

MAX_RESPONSE_BYTES = 4096


@dataclass(frozen=True)
class Answer:
    status: int


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, target: Target, address: str, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, target: Target, address: str, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        # HTTPSConnection's own SSL context (private in the stubs, set by its __init__).
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def post(target: Target, *, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
    """POST `body` to the target's first vetted address. Raises OSError (and ssl errors) on failure."""
    connection_class = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(target, target.addresses[0], timeout)
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        response = connection.getresponse()
        response.read(MAX_RESPONSE_BYTES)
        return Answer(status=response.status)
    finally:
        connection.close()

"""A webhook receiver that verifies with the Standard Webhooks reference library
(`standardwebhooks` from PyPI, installed by .ci/run), for gateway/tests/notify.rs.

Usage: webhook_receiver.py SECRET_FILE. Prints `port N` once listening, then one JSON line
per request: {"id", "timestamp", "signature", "body", "verified"}. Answers 204 when the
signature verifies under the secret in SECRET_FILE (read on each request, so the test can
write it after registering the endpoint), else 400.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

SECRET_FILE = sys.argv[1]


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0"))).decode()
        headers = {k.lower(): v for k, v in self.headers.items()}
        with open(SECRET_FILE) as f:
            secret = f.read().strip()
        try:
            Webhook(secret).verify(body, headers)
            verified = True
        except WebhookVerificationError:
            verified = False
        print(json.dumps({
            "id": headers.get("webhook-id"),
            "timestamp": headers.get("webhook-timestamp"),
            "signature": headers.get("webhook-signature"),
            "body": body,
            "verified": verified,
        }), flush=True)
        self.send_response(204 if verified else 400)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"port {server.server_address[1]}", flush=True)
server.serve_forever()

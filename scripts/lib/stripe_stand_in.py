"""A stand-in for Stripe's REST API, for scripts/serve-for-checks (standard library only).

    python3 stripe_stand_in.py PORT SECRET_KEY

Answers what Agentry asks of Stripe, in Stripe's wire format: form-encoded POSTs with the bearer
secret key, JSON answers; `/v1/checkout/sessions` a session, `/v1/refunds` a refund, a wrong key
401 with Stripe's error shape. The API checks (schemathesis, generated clients) then meet
Agentry's answers, not a 503 for a Stripe that is missing.
"""
import itertools
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

COUNTER = itertools.count(1)


class Stripe(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's name)
        length = int(self.headers.get("Content-Length") or 0)
        form = {key: values[0] for key, values in parse_qs(self.rfile.read(length).decode()).items()}
        if self.headers.get("Authorization") != f"Bearer {self.server.secret_key}":
            return self.answer(401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}})
        number = next(COUNTER)
        if self.path == "/v1/checkout/sessions":
            session = f"cs_test_{number}"
            return self.answer(200, {"id": session, "object": "checkout.session",
                                     "url": f"https://checkout.stripe.test/c/pay/{session}",
                                     "client_reference_id": form.get("client_reference_id")})
        if self.path == "/v1/refunds":
            return self.answer(200, {"id": f"re_test_{number}", "object": "refund",
                                     "amount": int(form.get("amount", "0")), "status": "succeeded"})
        return self.answer(404, {"error": {"type": "invalid_request_error", "message": "Unrecognized request URL"}})

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Stripe)
    server.secret_key = sys.argv[2]
    server.serve_forever()

"""A real HTTP JSON API on loopback for the API connector's tests: keyset pagination, 500s, 429s."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class OrdersApi:
    """``GET /orders?updated_since=<ms>&limit=<n>&page_token=<ts:id>`` ordered by (updated_at, id).

    Every ``fail_every``-th request answers 500; requests listed in ``throttle_requests`` answer
    429 with ``Retry-After``. Each answer is delayed by ``delay_s`` so a test can kill a client mid-way.
    """

    def __init__(self, fail_every: int = 4, throttle_requests=(5, 17), retry_after_s: int = 1, delay_s: float = 0.0):
        self.orders: dict[int, dict] = {}
        self.lock = threading.Lock()
        self.requests: list[tuple[float, int]] = []   # (time, status)
        self.fail_every, self.throttle_requests = fail_every, set(throttle_requests)
        self.retry_after_s, self.delay_s = retry_after_s, delay_s
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                status, body, headers = api.answer(self.path)
                time.sleep(api.delay_s)
                payload = json.dumps(body).encode()
                self.send_response(status)
                for k, v in {**headers, "Content-Type": "application/json", "Content-Length": str(len(payload))}.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/orders"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def upsert(self, order_id: int, updated_at: int, **fields) -> None:
        with self.lock:
            record = {"order_id": order_id, "customer_id": order_id % 17, "status": "NEW", "amount": order_id * 1.25,
                      "currency": "EUR", **self.orders.get(order_id, {}), **fields, "updated_at": updated_at}
            self.orders[order_id] = record

    def answer(self, path: str):
        query = {k: v[0] for k, v in parse_qs(urlsplit(path).query).items()}
        with self.lock:
            number = len(self.requests) + 1
            if number in self.throttle_requests:
                self.requests.append((time.monotonic(), 429))
                return 429, {"error": "slow down"}, {"Retry-After": str(self.retry_after_s)}
            if self.fail_every and number % self.fail_every == 0:
                self.requests.append((time.monotonic(), 500))
                return 500, {"error": "boom"}, {}
            self.requests.append((time.monotonic(), 200))
            since = int(query.get("updated_since", 0))
            rows = sorted((r for r in self.orders.values() if r["updated_at"] >= since),
                          key=lambda r: (r["updated_at"], str(r["order_id"])))
            if "page_token" in query:
                ts, oid = query["page_token"].split(":", 1)
                rows = [r for r in rows if (r["updated_at"], str(r["order_id"])) > (int(ts), oid)]
            limit = int(query.get("limit", 50))
            page = rows[:limit]
            token = f"{page[-1]['updated_at']}:{page[-1]['order_id']}" if len(rows) > limit else None
            return 200, {"data": [dict(r) for r in page], "next_page_token": token}, {}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

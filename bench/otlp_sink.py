#!/usr/bin/env python3
"""A stand-in OpenTelemetry collector for measuring span export: accepts OTLP/HTTP-JSON
POSTs on /v1/traces, answers 200 and counts the spans (printed on stderr every 5 s).

    python3 bench/otlp_sink.py 4318 &
    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 build/bin/durable-bench --workload sequence
"""
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

spans = 0
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        global spans
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        # Counted, not parsed: a parsing collector on the same 2 cores would fall behind and
        # make the exporter drop spans, which would flatter the figures.
        if not body.startswith(b'{"resourceSpans"'):
            self.send_response(400)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        n = body.count(b'"spanId"')
        with lock:
            spans += n
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def report():
    while True:
        time.sleep(5)
        with lock:
            print(f"otlp_sink: {spans} spans", file=sys.stderr, flush=True)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 4318
    threading.Thread(target=report, daemon=True).start()
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()

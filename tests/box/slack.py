#!/usr/bin/env python3
"""A Slack-like incoming webhook on loopback: answers every POST with 200 "ok"
(what Slack answers) and appends the request body as one line to FILE."""
import http.server
import sys

port, path = int(sys.argv[1]), sys.argv[2]


class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(path, "ab") as f:
            f.write(body.replace(b"\n", b" ") + b"\n")
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, fmt, *args):
        sys.stderr.write("slack: " + fmt % args + "\n")


open(path, "ab").close()
http.server.ThreadingHTTPServer(("127.0.0.1", port), Hook).serve_forever()

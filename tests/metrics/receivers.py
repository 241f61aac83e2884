"""Real metrics receivers on loopback for tests: ClickHouse, Pushgateway,
Alertmanager (Debian's packages), plus a faulty HTTP receiver.

    from receivers import Receivers, FaultyReceiver

    with Receivers() as r:              # start() ... stop(), always
        r.clickhouse_url                # http://127.0.0.1:<port>/
        r.pushgateway_url, r.alertmanager_url
        r.ch("SELECT 1")                # text answer of a query
        r.query("SELECT ... ")          # rows as dicts (FORMAT JSONEachRow)
        r.pushgateway_metrics()         # text of GET /metrics
        r.alerts()                      # GET /api/v2/alerts, parsed

Every server gets free non-default ports, its own temporary folder, and
is stopped (TERM, then KILL after 10 s) and its folder removed by stop().
ClickHouse 18.16 runs as root here with a private config (no need for the
clickhouse user when every path it writes is ours).  Start-up waits are
bounded (30 s each); a server that does not come up raises with the tail
of its log.

Used by tests/metrics (this folder) and meant to be imported by the Slurm
integration tests as well.
"""

import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def free_port():
    """A loopback TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_request(method, url, body=None, headers=None, timeout=10.0):
    """(status, body text) of one request; never raises for HTTP errors."""
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def _wait_http(url, expect, proc, log, timeout=START_TIMEOUT):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            status, text = http_request("GET", url, timeout=1.0)
            if status == 200 and expect in text:
                return
            last = f"HTTP {status}: {text[:200]}"
        except OSError as e:
            last = str(e)
        time.sleep(0.05)
    tail = ""
    try:
        with open(log, errors="replace") as f:
            tail = f.read()[-2000:]
    except OSError:
        pass
    raise RuntimeError(f"{url} not ready after {timeout:.0f}s (exit={proc.poll()}, "
                       f"last={last}); log:\n{tail}")


def _stop(proc):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(STOP_TIMEOUT)


CH_CONFIG = """<?xml version="1.0"?>
<yandex>
  <logger><level>information</level><log>{d}/log/server.log</log>
    <errorlog>{d}/log/err.log</errorlog><console>0</console></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>{http_port}</http_port>
  <tcp_port>{tcp_port}</tcp_port>
  <path>{d}/data/</path>
  <tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <format_schema_path>{d}/format_schemas/</format_schema_path>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>5368709120</mark_cache_size>
  <timezone>UTC</timezone>
</yandex>
"""

CH_USERS = """<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
  <users>
    <default><password></password><networks><ip>127.0.0.1</ip></networks>
      <profile>default</profile><quota>default</quota></default>
    <writer><password>{writer_password}</password><networks><ip>127.0.0.1</ip></networks>
      <profile>default</profile><quota>default</quota></writer>
  </users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
    <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time>
  </interval></default></quotas>
</yandex>
"""

AM_CONFIG = """route:
  receiver: "null"
  group_wait: 0s
receivers:
  - name: "null"
"""


class Receivers:
    """ClickHouse + Pushgateway + Alertmanager, private to one test run."""

    WRITER_USER = "writer"
    WRITER_PASSWORD = "ch-Writer-pw-5f1e"

    def __init__(self, clickhouse=True, pushgateway=True, alertmanager=True):
        self.want = {"clickhouse": clickhouse, "pushgateway": pushgateway,
                     "alertmanager": alertmanager}
        self.dir = None
        self.procs = {}
        self.ports = {}

    # ----------------------------------------------------------- life ---
    def start(self):
        self.dir = tempfile.mkdtemp(prefix="rs-receivers-")
        try:
            if self.want["clickhouse"]:
                self._start_clickhouse()
            if self.want["pushgateway"]:
                self._start_pushgateway()
            if self.want["alertmanager"]:
                self._start_alertmanager()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        for name in list(self.procs):
            _stop(self.procs.pop(name))
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def _spawn(self, name, argv, cwd=None):
        log = os.path.join(self.dir, f"{name}.log")
        with open(log, "wb") as out:
            # own session: a Ctrl-C to the test run does not reach it
            # first, and stop() is the one place it is ended
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=cwd or self.dir,
                                    start_new_session=True)
        self.procs[name] = proc
        return proc, log

    def _start_clickhouse(self):
        d = os.path.join(self.dir, "clickhouse")
        for sub in ("log", "data", "tmp", "user_files", "format_schemas"):
            os.makedirs(os.path.join(d, sub))
        http_port, tcp_port = free_port(), free_port()
        with open(os.path.join(d, "config.xml"), "w") as f:
            f.write(CH_CONFIG.format(d=d, http_port=http_port, tcp_port=tcp_port))
        with open(os.path.join(d, "users.xml"), "w") as f:
            f.write(CH_USERS.format(writer_password=self.WRITER_PASSWORD))
        proc, log = self._spawn("clickhouse", ["clickhouse-server",
                                               f"--config-file={d}/config.xml"], cwd=d)
        self.ports["clickhouse"] = http_port
        self.clickhouse_log = os.path.join(d, "log", "server.log")
        _wait_http(self.clickhouse_url + "ping", "Ok.", proc, self.clickhouse_log)

    def _start_pushgateway(self):
        port = free_port()
        proc, log = self._spawn("pushgateway", [
            "prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{port}",
            "--persistence.file="])
        self.ports["pushgateway"] = port
        _wait_http(self.pushgateway_url + "-/ready", "", proc, log)

    def _start_alertmanager(self):
        d = os.path.join(self.dir, "alertmanager")
        os.makedirs(os.path.join(d, "data"))
        with open(os.path.join(d, "am.yml"), "w") as f:
            f.write(AM_CONFIG)
        port = free_port()
        # an empty cluster address, or it binds 9094 on every interface
        proc, log = self._spawn("alertmanager", [
            "prometheus-alertmanager", f"--config.file={d}/am.yml",
            f"--storage.path={d}/data", f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address="])
        self.ports["alertmanager"] = port
        _wait_http(self.alertmanager_url + "-/ready", "", proc, log)

    # ----------------------------------------------------------- urls ---
    @property
    def clickhouse_url(self):
        return f"http://127.0.0.1:{self.ports['clickhouse']}/"

    @property
    def pushgateway_url(self):
        return f"http://127.0.0.1:{self.ports['pushgateway']}/"

    @property
    def alertmanager_url(self):
        return f"http://127.0.0.1:{self.ports['alertmanager']}/"

    def stop_one(self, name):
        """Stop one server (a receiver going down during a test)."""
        _stop(self.procs.pop(name, None))

    # -------------------------------------------------------- helpers ---
    def ch(self, sql, check=True):
        """Run one statement on ClickHouse; its text answer."""
        status, text = http_request("POST", self.clickhouse_url, sql)
        if check and status != 200:
            raise RuntimeError(f"ClickHouse HTTP {status} for {sql[:200]!r}: {text[:500]}")
        return text

    def query(self, sql):
        """Rows of a SELECT as dicts (UInt64 comes back as a string)."""
        text = self.ch(sql.rstrip().rstrip(";") + " FORMAT JSONEachRow")
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def pushgateway_metrics(self):
        status, text = http_request("GET", self.pushgateway_url + "metrics")
        assert status == 200, text
        return text

    def pushgateway_samples(self, name):
        """{frozenset(labels.items()): value} of metric `name`."""
        out = {}
        for line in self.pushgateway_metrics().splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            head, value = line.rsplit(" ", 1)
            labels = {}
            if "{" in head:
                inner = head[head.index("{") + 1:head.rindex("}")]
                for part in _split_labels(inner):
                    k, v = part.split("=", 1)
                    labels[k] = json.loads(v)
            out[frozenset(labels.items())] = float(value)
        return out

    def alerts(self):
        status, text = http_request("GET", self.alertmanager_url + "api/v2/alerts")
        assert status == 200, text
        return json.loads(text)


def _split_labels(inner):
    """Split a{..} label text on commas outside quotes."""
    parts, cur, quoted, esc = [], "", False, False
    for ch in inner:
        if esc:
            cur += ch
            esc = False
        elif ch == "\\":
            cur += ch
            esc = True
        elif ch == '"':
            cur += ch
            quoted = not quoted
        elif ch == "," and not quoted:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        parts.append(cur)
    return parts


class FaultyReceiver:
    """An HTTP receiver that misbehaves on purpose.

    mode: "500" (answers 500 with a body), "hang" (reads the request and
    never answers), "close" (reads the request, closes without a word),
    "echo400" (answers 400 with the request's headers in the body: a
    receiver that leaks what it was sent), or an int status to answer.
    Requests are counted; .last holds (method, path, headers, body).
    """

    def __init__(self, mode="500"):
        self.mode = mode
        self.count = 0
        self.last = None
        self._lock = threading.Lock()
        self._release = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                with outer._lock:
                    outer.count += 1
                    outer.last = (self.command, self.path, dict(self.headers), body)
                mode = outer.mode
                if mode == "hang":
                    outer._release.wait(60)
                    self.close_connection = True
                    return
                if mode == "close":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if mode == "echo400":
                    status, text = 400, "bad request; you sent: " + str(dict(self.headers))
                elif mode == "500":
                    status, text = 500, "internal error, try later"
                else:
                    status, text = int(mode), "status as configured"
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)
                self.close_connection = True

            do_GET = do_POST = do_PUT = _any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._release.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

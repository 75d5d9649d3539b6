"""A development ClickHouse server: the chdb engine (ClickHouse 26.x) behind ClickHouse's HTTP interface.

No current ClickHouse server installs from the registries these machines reach, but PyPI's chdb
embeds the engine in-process, and only one process may open a chdb data folder. This server owns
that folder and speaks the part of the HTTP protocol that clients such as clickhouse-connect use,
so the live job, replay jobs, tests and the demo all reach one ClickHouse at
``http://127.0.0.1:18123`` through the same code path as a production server:

* ``GET /ping`` and ``GET /`` answer ``Ok.``; ``GET /metrics`` is for Prometheus.
* the SQL comes from the ``query`` parameter, the body, or both (``query`` + newline + body);
* ``INSERT ... FORMAT <fmt>`` followed by data (Native, RowBinary, Arrow, ArrowStream, Parquet,
  TabSeparated, CSV, JSONEachRow, ... whatever the engine reads) in the body, optionally
  compressed (``Content-Encoding``: lz4, zstd, gzip, deflate, br);
* results in ``default_format`` (TabSeparated if unset) or the query's ``FORMAT``, compressed when
  the client sends ``enable_http_compression=1`` and ``Accept-Encoding``;
* every other URL parameter is a ClickHouse setting (``param_<name>`` binds a query parameter),
  applied to that request only; ``database`` selects the current database;
* errors as ClickHouse returns them: HTTP 500 (404 for unknown tables/databases, 401/403 for
  authentication), ``X-ClickHouse-Exception-Code`` and ``Code: N. DB::Exception: ...`` bodies.

It is a development server, not part of the product: one engine session serves every request
in turn (a lock), so throughput is one query at a time, and HTTP sessions (``session_id``) share
that one session, so temporary tables are visible to all clients.
"""
from __future__ import annotations

import argparse
import base64
import gzip
import json
import logging
import os
import re
import signal
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import lz4.frame
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

try:  # Python 3.14 has zstd in the standard library; older ones get it from backports.zstd.
    from compression import zstd  # type: ignore[import-not-found]
except ImportError:
    from backports import zstd  # type: ignore[no-redef]

log = logging.getLogger("clickhouse-dev")

QUERIES = Counter("clickhouse_dev_queries_total", "Queries served", ["kind"])
ERRORS = Counter("clickhouse_dev_errors_total", "Queries that failed", ["code"])
LATENCY = Histogram("clickhouse_dev_query_seconds", "Time to execute a query, lock wait included")
INSERTED_BYTES = Counter("clickhouse_dev_insert_bytes_total", "Uncompressed bytes of insert data")

# URL parameters that steer the HTTP exchange and are not ClickHouse settings.
TRANSPORT_PARAMS = frozenset({
    "query", "database", "default_format", "query_id", "session_id", "session_timeout",
    "session_check", "quota_key", "user", "password", "compress", "decompress", "buffer_size",
    "wait_end_of_query", "client_protocol_version", "role", "enable_http_compression",
    "send_progress_in_http_headers", "http_headers_progress_interval_ms",
    "http_zlib_compression_level", "http_native_compression_disable_checksumming_on_decompress",
    "cancel_http_readonly_queries_on_client_close", "max_query_size",
})

# ClickHouse error codes this server raises itself.
UNKNOWN_FORMAT = 73
NOT_IMPLEMENTED = 48
AUTHENTICATION_FAILED = 516
CANNOT_DECOMPRESS = 271
SYNTAX_ERROR = 62
HTTP_STATUS_FOR_CODE = {
    81: HTTPStatus.NOT_FOUND,   # UNKNOWN_DATABASE
    60: HTTPStatus.NOT_FOUND,   # UNKNOWN_TABLE
    AUTHENTICATION_FAILED: HTTPStatus.UNAUTHORIZED,
    SYNTAX_ERROR: HTTPStatus.BAD_REQUEST,
}

_CODE_RE = re.compile(r"Code:\s*(\d+)")
_IDENT = r"(?:`(?:[^`\\]|\\.)+`|\"(?:[^\"\\]|\\.)+\"|[A-Za-z_][A-Za-z0-9_$]*)"
# INSERT INTO [TABLE] [db.]table [(c1, c2)] [SETTINGS ...] FORMAT <name><one whitespace><data>
_INSERT_RE = re.compile(
    rf"""^\s*INSERT\s+INTO\s+(?:TABLE\s+)?
        (?:(?P<database>{_IDENT})\s*\.\s*)?(?P<table>{_IDENT})\s*
        (?:\((?P<columns>[^)]*)\)\s*)?
        (?:SETTINGS\s+(?P<settings>.*?)\s+)?
        FORMAT\s+(?P<format>[A-Za-z0-9_]+)[ \t]*\r?\n?""",
    re.IGNORECASE | re.VERBOSE | re.DOTALL,
)
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ClickHouseError(Exception):
    """An error to return to the client the way ClickHouse would."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


def _error_from_engine(exc: Exception) -> ClickHouseError:
    text = str(exc).strip()
    match = _CODE_RE.search(text)
    return ClickHouseError(int(match.group(1)) if match else 1000, text)


def _unquote(identifier: str) -> str:
    identifier = identifier.strip()
    if identifier[:1] in "`\"" and identifier[-1:] == identifier[:1]:
        return re.sub(r"\\(.)", r"\1", identifier[1:-1])
    return identifier


def _quote(identifier: str) -> str:
    return "`" + identifier.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _split_columns(columns: str) -> list[str]:
    names, current, quote = [], [], ""
    for ch in columns:
        if quote:
            current.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "`\"":
            quote = ch
            current.append(ch)
        elif ch == ",":
            names.append(_unquote("".join(current)))
            current = []
        else:
            current.append(ch)
    if "".join(current).strip():
        names.append(_unquote("".join(current)))
    return names


def decompress(body: bytes, encoding: str | None) -> bytes:
    encoding = (encoding or "").strip().lower()
    if not encoding or encoding == "identity":
        return body
    try:
        if encoding == "lz4":
            return lz4.frame.decompress(body)
        if encoding == "zstd":
            return zstd.decompress(body)
        if encoding in ("gzip", "x-gzip"):
            return gzip.decompress(body)
        if encoding == "deflate":
            return zlib.decompress(body)
        if encoding == "br":
            import brotli  # optional, as in clickhouse-connect

            return brotli.decompress(body)
    except ImportError as exc:
        raise ClickHouseError(NOT_IMPLEMENTED, f"Content-Encoding {encoding} needs the brotli package") from exc
    except Exception as exc:
        raise ClickHouseError(CANNOT_DECOMPRESS, f"Cannot decompress {encoding} request body: {exc}") from exc
    raise ClickHouseError(NOT_IMPLEMENTED, f"Unknown Content-Encoding: {encoding}")


def _compressors() -> dict[str, callable]:
    table = {
        "lz4": lz4.frame.compress,
        "zstd": zstd.compress,
        "gzip": gzip.compress,
        "deflate": zlib.compress,
    }
    try:
        import brotli

        table["br"] = brotli.compress
    except ImportError:
        pass
    return table


COMPRESSORS = _compressors()


def choose_encoding(accept_encoding: str | None) -> str | None:
    """The first encoding of the client's list that we can produce (clients list preference order)."""
    for item in (accept_encoding or "").split(","):
        name = item.split(";")[0].strip().lower()
        if name in COMPRESSORS:
            return name
    return None


@dataclass
class Result:
    body: bytes
    format: str
    read_rows: int = 0
    read_bytes: int = 0
    written_rows: int = 0
    written_bytes: int = 0
    result_rows: int = 0
    elapsed: float = 0.0


class Engine:
    """The one chdb session, and the per-request SET / USE / reset around each query."""

    def __init__(self, data_dir: Path, tmp_dir: Path) -> None:
        from chdb import session

        data_dir.mkdir(parents=True, exist_ok=True)
        tmp_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir = tmp_dir
        self._session = session.Session(str(data_dir))
        self._lock = threading.Lock()
        self.version = self._raw("SELECT version()").decode().strip()

    def close(self) -> None:
        with self._lock:
            self._session.close()

    def _raw(self, sql: str, fmt: str = "TabSeparated"):
        try:
            result = self._session.query(sql, fmt)
        except Exception as exc:  # chdb raises its own error type with ClickHouse's text
            raise _error_from_engine(exc) from exc
        if getattr(result, "has_error", lambda: False)():
            raise _error_from_engine(RuntimeError(result.error_message()))
        return result.bytes() if hasattr(result, "bytes") else bytes(result)

    def execute(
        self, sql: str, *, data: bytes | None, default_format: str, database: str | None,
        settings: dict[str, str],
    ) -> Result:
        insert = _INSERT_RE.match(sql) if data is not None else None
        with self._lock:
            applied: list[str] = []
            try:
                if database:
                    self._raw(f"USE {_quote(database)}")
                for name, value in settings.items():
                    if not _SETTING_NAME.match(name):
                        raise ClickHouseError(115, f"Unknown setting {name!r}")
                    # A query parameter's value is text, as the HTTP interface receives it: a string literal.
                    literal = _sql_string(value) if name.startswith("param_") else _setting_literal(value)
                    self._raw(f"SET {name} = {literal}")
                    applied.append(name)
                started = time.perf_counter()
                if insert:
                    result = self._insert(insert, data or b"")
                else:
                    text = sql if data is None else sql + data.decode("utf-8", "surrogateescape")
                    result = self._query(text, default_format)
                result.elapsed = time.perf_counter() - started
                return result
            finally:
                self._reset(applied, database is not None)

    def _reset(self, applied: Iterable[str], database_changed: bool) -> None:
        for name in applied:
            try:
                if name.startswith("param_"):
                    self._raw(f"SET {name} = ''")
                else:
                    self._raw(f"SET {name} = DEFAULT")
            except ClickHouseError:
                log.warning("could not reset setting %s", name)
        if database_changed:
            self._raw("USE default")

    def _query(self, sql: str, default_format: str) -> Result:
        try:
            result = self._session.query(sql, default_format)
        except Exception as exc:
            raise _error_from_engine(exc) from exc
        if getattr(result, "has_error", lambda: False)():
            raise _error_from_engine(RuntimeError(result.error_message()))
        return Result(
            body=result.bytes(), format=default_format,
            read_rows=int(result.rows_read()), read_bytes=int(result.bytes_read()),
            written_rows=int(getattr(result, "rows_written", lambda: 0)()),
            written_bytes=int(getattr(result, "bytes_written", lambda: 0)()),
            result_rows=int(result.rows_read()),
        )

    def _insert(self, match: re.Match, data: bytes) -> Result:
        """INSERT ... FORMAT fmt <data>: the engine reads the data from a file with the table's structure."""
        database = _unquote(match.group("database")) if match.group("database") else None
        name = _unquote(match.group("table"))
        columns = _split_columns(match.group("columns")) if match.group("columns") else None
        structure = self._structure(database, name, columns)
        fmt = match.group("format")
        target = f"{_quote(database)}.{_quote(name)}" if database else _quote(name)
        column_list = f" ({', '.join(_quote(c) for c in columns)})" if columns else ""
        settings = f" SETTINGS {match.group('settings')}" if match.group("settings") else ""
        INSERTED_BYTES.inc(len(data))
        with tempfile.NamedTemporaryFile(dir=self.tmp_dir, suffix=f".{fmt}") as f:
            f.write(data)
            f.flush()
            sql = (
                f"INSERT INTO {target}{column_list}{settings} SELECT * FROM "
                f"file({_sql_string(f.name)}, {_sql_string(fmt)}, {_sql_string(structure)})"
            )
            result = self._query(sql, "TabSeparated")
        result.body = b""
        return result

    def _structure(self, database: str | None, table: str, columns: list[str] | None) -> str:
        db_expr = _sql_string(database) if database else "currentDatabase()"
        rows = self._raw(
            "SELECT name, type FROM system.columns "
            f"WHERE database = {db_expr} AND table = {_sql_string(table)} "
            "AND default_kind NOT IN ('MATERIALIZED', 'ALIAS', 'EPHEMERAL') ORDER BY position",
            "JSONCompact",
        )
        known = {name: typ for name, typ in json.loads(rows)["data"]}
        if not known:
            where = f"{database}.{table}" if database else table
            raise ClickHouseError(60, f"Table {where} does not exist. (UNKNOWN_TABLE)")
        wanted = columns or list(known)
        missing = [c for c in wanted if c not in known]
        if missing:
            raise ClickHouseError(16, f"No such column {missing[0]} in table {table} (NO_SUCH_COLUMN_IN_TABLE)")
        return ", ".join(f"{_quote(c)} {known[c]}" for c in wanted)


def _setting_literal(value: str) -> str:
    """Numbers and booleans as they are, everything else as a string literal (as ClickHouse parses URL settings)."""
    if re.fullmatch(r"-?\d+(\.\d+)?", value) or value.lower() in ("true", "false"):
        return value
    return _sql_string(value)


class Handler(BaseHTTPRequestHandler):
    server_version = "ClickHouse-dev"
    protocol_version = "HTTP/1.1"
    engine: Engine
    user: str
    password: str

    # -- HTTP verbs ---------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = urlsplit(self.path).path
        if path == "/metrics":
            self._send(HTTPStatus.OK, generate_latest(), {"Content-Type": CONTENT_TYPE_LATEST})
            return
        if path in ("/ping", "/") and "query" not in self._params():
            self._send(HTTPStatus.OK, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
            return
        self._handle(readonly=True)

    def do_POST(self) -> None:  # noqa: N802
        self._handle(readonly=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._send(HTTPStatus.OK, b"", {"Content-Type": "text/html; charset=UTF-8"})

    # -- the query exchange ---------------------------------------------------------------------
    def _params(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))

    def _handle(self, readonly: bool) -> None:
        query_id = ""
        try:
            params = self._params()
            query_id = params.get("query_id") or str(uuid.uuid4())
            self._authenticate(params)
            body = self._read_body()
            content_type = self.headers.get("Content-Type", "")
            if content_type.startswith("multipart/form-data"):
                raise ClickHouseError(
                    NOT_IMPLEMENTED,
                    "multipart/form-data requests (external tables, form-encoded parameters) are not "
                    "supported by the development ClickHouse server",
                )
            body = decompress(body, self.headers.get("Content-Encoding"))
            sql = params.get("query", "")
            if sql and body:
                sql, data = sql + "\n", body
            elif sql:
                data = None
            else:
                sql, data = "", body
                # The whole body is SQL, unless it is an INSERT ... FORMAT with data after it.
                text = body.decode("utf-8", "surrogateescape")
                match = _INSERT_RE.match(text)
                if match:
                    head = text[: match.end()].encode("utf-8", "surrogateescape")
                    sql, data = head.decode("utf-8", "surrogateescape"), body[len(head):]
                else:
                    sql, data = text, None
            if not sql.strip():
                raise ClickHouseError(SYNTAX_ERROR, "Empty query. (SYNTAX_ERROR)")
            if readonly and data is None and not _is_read_only(sql):
                raise ClickHouseError(164, "Cannot execute query in readonly mode: a GET request is read-only (READONLY)")
            settings = {k: v for k, v in params.items() if k not in TRANSPORT_PARAMS}
            default_format = params.get("default_format") or "TabSeparated"
            with LATENCY.time():
                result = self.engine.execute(
                    sql, data=data, default_format=default_format,
                    database=params.get("database") or None, settings=settings,
                )
            QUERIES.labels("insert" if data is not None and _INSERT_RE.match(sql) else "query").inc()
            self._send_result(result, params, query_id)
        except ClickHouseError as exc:
            ERRORS.labels(str(exc.code)).inc()
            self._send_error(exc, query_id)
        except Exception as exc:  # a bug here must still answer the client, not drop the socket
            log.exception("internal error")
            ERRORS.labels("1001").inc()
            self._send_error(ClickHouseError(1001, f"Internal error of the development server: {exc!r}"), query_id)

    def _authenticate(self, params: dict[str, str]) -> None:
        user = self.headers.get("X-ClickHouse-User") or params.get("user")
        password = self.headers.get("X-ClickHouse-Key") or params.get("password") or ""
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        user = user or "default"
        if user != self.user or password != self.password:
            raise ClickHouseError(
                AUTHENTICATION_FAILED,
                f"{user}: Authentication failed: password is incorrect, or there is no user with such name. "
                "(AUTHENTICATION_FAILED)",
            )

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send_result(self, result: Result, params: dict[str, str], query_id: str) -> None:
        summary = {
            "read_rows": str(result.read_rows), "read_bytes": str(result.read_bytes),
            "written_rows": str(result.written_rows), "written_bytes": str(result.written_bytes),
            "total_rows_to_read": str(result.read_rows), "result_rows": str(result.result_rows),
            "result_bytes": str(len(result.body)), "elapsed_ns": str(int(result.elapsed * 1e9)),
        }
        headers = {
            "Content-Type": "application/octet-stream" if result.body[:1] not in (b"{", b"[") else "application/json; charset=UTF-8",
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Format": result.format,
            "X-ClickHouse-Timezone": "UTC",
            "X-ClickHouse-Server-Display-Name": "kappa-dev",
            "X-ClickHouse-Summary": json.dumps(summary),
        }
        body = result.body
        if params.get("enable_http_compression") in ("1", "true") and body:
            encoding = choose_encoding(self.headers.get("Accept-Encoding"))
            if encoding:
                body = COMPRESSORS[encoding](body)
                headers["Content-Encoding"] = encoding
        self._send(HTTPStatus.OK, body, headers)

    def _send_error(self, exc: ClickHouseError, query_id: str) -> None:
        message = str(exc)
        if not message.startswith("Code:"):
            message = f"Code: {exc.code}. DB::Exception: {message}"
        body = f"{message} (version {getattr(self.engine, 'version', '')} (kappa-dev))\n".encode()
        status = HTTP_STATUS_FOR_CODE.get(exc.code, HTTPStatus.INTERNAL_SERVER_ERROR)
        self._send(status, body, {
            "Content-Type": "text/plain; charset=UTF-8",
            "X-ClickHouse-Exception-Code": str(exc.code),
            "X-ClickHouse-Query-Id": query_id,
        })

    def _send(self, status: HTTPStatus, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server's signature)
        log.debug("%s " + format, self.client_address[0], *args)


_READ_ONLY_RE = re.compile(r"^\s*(?:/\*.*?\*/\s*|--[^\n]*\n\s*)*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXISTS|EXPLAIN)\b", re.IGNORECASE | re.DOTALL)


def _is_read_only(sql: str) -> bool:
    return bool(_READ_ONLY_RE.match(sql))


def serve(data_dir: Path, host: str, port: int, user: str, password: str) -> None:
    engine = Engine(data_dir / "engine", data_dir / "tmp")
    handler = type("BoundHandler", (Handler,), {"engine": engine, "user": user, "password": password})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True

    def shutdown(signum, frame):  # noqa: ARG001
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    log.info("ClickHouse %s (chdb) serving %s on http://%s:%d", engine.version, data_dir, host, port)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        engine.close()
        log.info("stopped")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="folder the engine owns")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18123)
    parser.add_argument("--user", default=os.environ.get("CLICKHOUSE_USER", "default"))
    parser.add_argument("--password", default=os.environ.get("CLICKHOUSE_PASSWORD", ""))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    serve(args.data, args.host, args.port, args.user, args.password)


if __name__ == "__main__":
    main()

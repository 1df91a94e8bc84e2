"""Shared plumbing for the peer benchmark scripts (duckdb_peer.py, spark_peer.py).

Command line (both scripts):

    python bench/peers/<engine>_peer.py --events FILE.jsonl [--threads N] [--repeat R]

    --events FILE   JSON-lines file of listing events (docs/events.md), one event a line.
    --threads N     1 = one thread (DuckDB `SET threads=1`, Spark `local[1]`);
                    0 = all cores (DuckDB threads = os.cpu_count(), Spark `local[*]`).
                    Default 0.
    --repeat R      Timed runs of the query, in the same session. Default 3.

Stdout carries exactly one JSON object and nothing else (see `Peer.main`); every log line,
warning and error goes to stderr. Exit status 0 on success, 1 on any failure (with a
message on stderr), 2 on a bad command line.

The figures, per market (`listing.market.city_state`), the same definitions as the Rust
metrics code:

1. Keep each listing's (`listing.id`) latest event: greatest top-level `observed_at`. The
   generator makes `observed_at` strictly increasing per listing, so there are no ties and
   "latest" is well defined; `observed_at` is compared as a parsed timestamp, never as text
   (RFC 3339 text with optional fractional seconds does not sort as text).
2. The listing counts when that event's `kind != 'delisted'`, `listing.offer == 'sale'` and
   `listing.status == 'active'`.
3. `listings`: count; `median_price`: nearest-rank lower median of `price_minor` (the value
   at rank ceil(n/2) in ascending order, never an average) / 100; `median_price_per_sqft`:
   the same median of `price_minor / living_area_sqft` (double) over the counted listings
   with `living_area_sqft > 0`, / 100, null when a market has none.
"""

import argparse
import json
import math
import os
import sys
import time
import traceback


class PeerError(Exception):
    """A failure with a message meant for the person running the benchmark."""


def parse_args(engine):
    parser = argparse.ArgumentParser(
        prog=f"{engine}_peer.py",
        description=f"Per-market listing figures with {engine}, timed (peer benchmark for "
        "`realty bench`). Prints one JSON object on stdout.",
    )
    parser.add_argument("--events", required=True, metavar="FILE",
                        help="JSON-lines file of listing events (docs/events.md)")
    parser.add_argument("--threads", type=int, default=0, metavar="N",
                        help="worker threads: 1 = one, 0 = all cores (default 0)")
    parser.add_argument("--repeat", type=int, default=3, metavar="R",
                        help="timed runs of the query in one session (default 3)")
    args = parser.parse_args()
    if args.threads < 0:
        parser.error("--threads must be 0 (all cores) or a positive number")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def claim_stdout():
    """Reserve the real stdout for the one JSON result.

    Duplicates file descriptor 1 for the result, then points fd 1 (and `sys.stdout`) at
    stderr, so anything else that writes to stdout (a stray print, a native library, the
    JVM that pyspark starts as a child process and which inherits fd 1) lands on stderr.
    """
    sys.stdout.flush()
    result_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(result_fd, "w", encoding="utf-8")


def check_events_file(path):
    # Both engines read a path with these characters as a glob pattern, not a file name.
    glob_chars = sorted(set("*?[]{}") & set(path))
    if glob_chars:
        raise PeerError(f"events path has glob characters {''.join(glob_chars)!r} that the "
                        f"engines would expand; rename or link the file: {path}")
    if not os.path.exists(path):
        raise PeerError(f"events file not found: {path}")
    if not os.path.isfile(path):
        raise PeerError(f"events path is not a regular file: {path}")
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise PeerError(f"cannot read events file {path}: {e}") from e
    return os.path.abspath(path)


def all_cores():
    return os.cpu_count() or 1


def _finite_or_none(value, what, market):
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value):
        raise PeerError(f"{what} of market {market!r} is not finite: {value}")
    return value


def to_markets(rows):
    """(market, listings, median_price, median_price_per_sqft) rows -> sorted JSON objects."""
    markets = []
    for market, listings, median_price, median_ppsf in rows:
        if market is None:
            raise PeerError("a counted listing has no listing.market.city_state")
        median_price = _finite_or_none(median_price, "median_price", market)
        if median_price is None:
            raise PeerError(f"market {market!r} has listings but no median price")
        markets.append({
            "market": str(market),
            "listings": int(listings),
            "median_price": median_price,
            "median_price_per_sqft": _finite_or_none(median_ppsf, "median_price_per_sqft", market),
        })
    # Sorted here, by code point, so both engines order alike whatever their collation.
    markets.sort(key=lambda m: m["market"])
    return markets


class Peer:
    """One engine. Subclasses set `engine` and implement the four methods below."""

    engine = "?"

    def prepare(self):
        """Untimed checks and environment before start-up (e.g. finding Java)."""

    def start(self, threads):
        """Import the engine and open a session; return the effective thread count."""
        raise NotImplementedError

    def version(self):
        raise NotImplementedError

    def count_events(self, path):
        """Number of events (lines) in the file, as the engine reads it."""
        raise NotImplementedError

    def query(self, path):
        """Read and parse `path` afresh and return the figures as a list of
        (market, listings, median_price, median_price_per_sqft) tuples, in Python."""
        raise NotImplementedError

    def stop(self):
        pass

    def describe_error(self, error):
        """One or two lines saying what went wrong (the traceback is printed before it)."""
        first_line = (str(error).strip().splitlines() or [""])[0]
        return f"{type(error).__name__}: {first_line}"

    def main(self):
        args = parse_args(self.engine)
        out = claim_stdout()
        started = False
        try:
            path = check_events_file(args.events)
            self.prepare()

            t0 = time.perf_counter()
            threads = self.start(args.threads)
            started = True
            startup_s = time.perf_counter() - t0

            # Untimed: checks that the engine reads every line of the file.
            events = int(self.count_events(path))

            runs_s = []
            markets = None
            for _ in range(args.repeat):
                t = time.perf_counter()
                rows = self.query(path)
                runs_s.append(time.perf_counter() - t)
                this_run = to_markets(rows)
                if markets is not None and this_run != markets:
                    raise PeerError("two runs of the same query gave different figures")
                markets = this_run

            result = {
                "engine": self.engine,
                "engine_version": self.version(),
                "threads": int(threads),
                "events": events,
                "startup_s": round(startup_s, 6),
                "runs_s": [round(r, 6) for r in runs_s],
                "markets": markets,
            }
            text = json.dumps(result, allow_nan=False, separators=(",", ":"))
            out.write(text + "\n")
            out.flush()
        except PeerError as e:
            print(f"{self.engine}_peer: error: {e}", file=sys.stderr)
            return 1
        except Exception as e:  # noqa: BLE001 - report anything, exit non-zero
            traceback.print_exc(file=sys.stderr)
            print(f"{self.engine}_peer: error: {self.describe_error(e)}", file=sys.stderr)
            return 1
        finally:
            if started:
                try:
                    self.stop()
                except Exception as e:  # noqa: BLE001 - the result is what matters
                    print(f"{self.engine}_peer: warning: stopping the engine failed: {e}",
                          file=sys.stderr)
        return 0

#!/usr/bin/env python3
"""DuckDB peer for `realty bench`: per-market figures over a JSON-lines file of listing
events, timed. Contract, definitions and output: see peer_common.py.

    python bench/peers/duckdb_peer.py --events FILE.jsonl [--threads N] [--repeat R]
"""

import os
import sys

sys.dont_write_bytecode = True  # leave no __pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from peer_common import Peer, PeerError, all_cores  # noqa: E402

# Explicit schema: only the fields the figures need. read_json ignores every other key
# (top level and inside `listing`), and a field left out reads as NULL. `observed_at` is
# parsed as a timestamp (microseconds), so fractional seconds and offsets compare right.
COLUMNS = (
    "{kind: 'VARCHAR', observed_at: 'TIMESTAMPTZ', "
    "listing: 'STRUCT(id VARCHAR, status VARCHAR, offer VARCHAR, price_minor BIGINT, "
    "living_area_sqft BIGINT, market STRUCT(city_state VARCHAR))'}"
)

# Latest event per listing with arg_max over a struct: one hash aggregate, no sort. It
# measured the same as `QUALIFY row_number() OVER (PARTITION BY id ORDER BY observed_at
# DESC) = 1` (within noise, 200k events) and says what it means more directly.
# observed_at is strictly increasing per listing (the generator guarantees it), so arg_max
# has no ties to break. quantile_disc(x, 0.5) is the value at rank ceil(n/2) (checked:
# n = 4 gives the 2nd value, n = 5 the 3rd); it skips the NULL price per sqft of listings
# without a living area, and gives NULL when all are NULL.
QUERY = """
WITH events AS (
    SELECT
        observed_at,
        listing.id AS id,
        kind,
        listing.status AS status,
        listing.offer AS offer,
        listing.price_minor AS price_minor,
        listing.living_area_sqft AS living_area_sqft,
        listing.market.city_state AS market
    FROM read_json({path}, format = 'newline_delimited', columns = {columns})
),
latest AS (
    SELECT arg_max(events, observed_at) AS e
    FROM events
    GROUP BY id
)
SELECT
    e.market AS market,
    count(*) AS listings,
    CAST(quantile_disc(e.price_minor, 0.5) AS DOUBLE) / 100 AS median_price,
    quantile_disc(
        CASE WHEN e.living_area_sqft > 0
             THEN CAST(e.price_minor AS DOUBLE) / e.living_area_sqft END,
        0.5) / 100 AS median_price_per_sqft
FROM latest
WHERE e.kind <> 'delisted' AND e.offer = 'sale' AND e.status = 'active'
GROUP BY e.market
"""

COUNT = "SELECT count(*) FROM read_json({path}, format = 'newline_delimited', columns = {columns})"


def sql_string(text):
    return "'" + text.replace("'", "''") + "'"


class DuckDbPeer(Peer):
    engine = "duckdb"

    def start(self, threads):
        try:
            import duckdb
        except ImportError as e:
            raise PeerError(f"duckdb is not installed ({e}): "
                            "pip install -r bench/peers/requirements.txt") from e

        self.duckdb = duckdb
        self.con = duckdb.connect(":memory:")
        self.con.execute(f"SET threads = {threads if threads > 0 else all_cores()}")
        # Read the file from disk every run: no DuckDB-side cache of file contents (the
        # OS page cache still serves it, for both engines alike).
        try:
            self.con.execute("SET enable_external_file_cache = false")
        except duckdb.Error:
            pass  # a version without that cache
        return int(self.con.execute("SELECT current_setting('threads')").fetchone()[0])

    def version(self):
        return self.duckdb.__version__

    def count_events(self, path):
        sql = COUNT.format(path=sql_string(path), columns=COLUMNS)
        return self.con.execute(sql).fetchone()[0]

    def query(self, path):
        sql = QUERY.format(path=sql_string(path), columns=COLUMNS)
        return self.con.execute(sql).fetchall()

    def stop(self):
        self.con.close()


if __name__ == "__main__":
    sys.exit(DuckDbPeer().main())

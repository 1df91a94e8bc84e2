#!/usr/bin/env python3
"""DuckDB peer for `realty bench`: per-market figures over a JSON-lines file of listing
events, timed. Contract, definitions and output: see peer_common.py.

    python bench/peers/duckdb_peer.py --events FILE.jsonl [--threads N] [--repeat R]
"""

import os
import sys

sys.dont_write_bytecode = True  # leave no __pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from peer_common import (  # noqa: E402
    NEW_LISTING_SQL,
    PRICE_CUT_SQL,
    SCOPE_KEYS_SQL,
    STANDING_SQL,
    YIELDS_SQL,
    ZIP_GEO_SQL,
    Peer,
    PeerError,
    all_cores,
)

# Explicit schema: only the fields the figures need. read_json ignores every other key
# (top level and inside `listing`), and a field left out reads as NULL. `observed_at` is
# parsed as a timestamp (microseconds), so fractional seconds and offsets compare right.
COLUMNS = (
    "{kind: 'VARCHAR', observed_at: 'TIMESTAMPTZ', "
    "changes: 'STRUCT(price STRUCT(old BIGINT, new BIGINT), fields VARCHAR[])', "
    "listing: 'STRUCT(id VARCHAR, status VARCHAR, offer VARCHAR, price_minor BIGINT, "
    "living_area_sqft BIGINT, beds BIGINT, on_market_date DATE, rent_estimate_minor BIGINT, "
    "property_type VARCHAR, market STRUCT(city_state VARCHAR, zip VARCHAR))'}"
)

# The figures of peer_common.py. The file is read once (the CTE is materialized) and feeds
# two aggregations: per (scope, day) the event counters and the last observation, each event
# in each of its scopes (a lateral unnest of its scope keys), and per listing its latest
# event, then in each of that event's scopes, with arg_max over a struct: one hash aggregate, no sort (it
# measured the same as a row_number() window and says what it means more directly).
# observed_at is strictly increasing per listing (the generator guarantees it), so arg_max
# has no ties to break. quantile_disc(x, 0.5) is the value at rank ceil(n/2) (checked:
# n = 4 gives the 2nd value, n = 5 the 3rd); it skips NULLs and gives NULL when all are.
# Days are UTC dates (the session's TimeZone is set to UTC).
QUERY = """
WITH parsed AS (
    SELECT
        *,
        listing.market.city_state AS city,
        listing.market.zip AS zip,
        listing.property_type AS property_type
    FROM read_json({path}, format = 'newline_delimited', columns = {columns})
),
events AS MATERIALIZED (
    SELECT
        observed_at,
        kind,
        listing.id AS id,
        listing.status AS status,
        listing.offer AS offer,
        listing.price_minor AS price_minor,
        listing.living_area_sqft AS living_area_sqft,
        listing.beds AS beds,
        listing.on_market_date AS on_market_date,
        listing.rent_estimate_minor AS rent_estimate_minor,
        """ + SCOPE_KEYS_SQL.replace("{array}", "list_value").replace(
            "zip_geo", "(" + ZIP_GEO_SQL + ")") + """ AS scopes,
        changes.price.old AS old_price,
        changes.price.new AS new_price,
        changes.fields AS changed_fields,
        lag(kind) OVER by_listing AS prev_kind,
        lag(listing.status) OVER by_listing AS prev_status
    FROM parsed
    WINDOW by_listing AS (PARTITION BY listing.id ORDER BY observed_at)
),
daily AS (
    SELECT
        market,
        CAST(observed_at AS DATE) AS day,
        max(observed_at) AS last_observed,
        count(*) FILTER (WHERE """ + NEW_LISTING_SQL + """) AS new_listings,
        count(*) FILTER (WHERE """ + PRICE_CUT_SQL.format(contains="list_contains") + """)
            AS price_cuts
    FROM events CROSS JOIN unnest(events.scopes) AS s(market)
    WHERE market IS NOT NULL
    GROUP BY market, day
),
as_of AS (
    SELECT market, CAST(max(last_observed) AS DATE) AS today
    FROM daily
    GROUP BY market
),
counters AS (
    SELECT
        market,
        sum(new_listings) AS new_listings_7d,
        sum(price_cuts) AS price_cuts_7d
    FROM daily JOIN as_of USING (market)
    WHERE day BETWEEN today - 6 AND today
    GROUP BY market
),
latest AS (
    SELECT unnest(e)
    FROM (SELECT arg_max(events, observed_at) AS e FROM events GROUP BY id)
),
scoped_latest AS (
    SELECT latest.* EXCLUDE (scopes), market
    FROM latest CROSS JOIN unnest(latest.scopes) AS s(market)
    WHERE market IS NOT NULL
),
standing AS (
    SELECT
        scoped_latest.*,
        today,
""" + STANDING_SQL + """    FROM scoped_latest JOIN as_of USING (market)
),
inventory AS (
    SELECT
        market,
        count(*) FILTER (WHERE standing = 'active') AS active_listings,
        count(*) FILTER (WHERE standing = 'pending') AS pending_listings,
        avg(price_minor) FILTER (WHERE standing = 'active') / 100 AS average_price,
        CAST(quantile_disc(price_minor, 0.5)
             FILTER (WHERE standing = 'active' AND price_minor > 0) AS DOUBLE) / 100
            AS median_price,
        quantile_disc(CAST(price_minor AS DOUBLE) / living_area_sqft, 0.5)
            FILTER (WHERE standing = 'active' AND price_minor > 0 AND living_area_sqft > 0)
            / 100 AS median_price_per_sqft,
        CAST(quantile_disc(living_area_sqft, 0.5)
             FILTER (WHERE standing = 'active' AND living_area_sqft > 0) AS DOUBLE)
            AS median_living_area_sqft,
        quantile_disc(date_diff('day', on_market_date, today), 0.5)
            FILTER (WHERE standing = 'active' AND on_market_date IS NOT NULL)
            AS median_days_on_market,
        quantile_disc(12 * CAST(rent_estimate_minor AS DOUBLE) / price_minor, 0.5)
            FILTER (WHERE standing = 'active' AND rent_estimate_minor > 0 AND price_minor > 0)
            AS estimate_yield
    FROM standing
    GROUP BY market
),
by_bedrooms AS (
    SELECT
        market,
        least(beds, 4) AS bedrooms,
        count(*) FILTER (WHERE standing = 'rental') AS rentals,
        quantile_disc(price_minor, 0.5) FILTER (WHERE standing = 'rental') AS median_rent,
        count(*) FILTER (WHERE standing = 'active') AS sale_listings,
        quantile_disc(price_minor, 0.5) FILTER (WHERE standing = 'active') AS median_sale_price
    FROM standing
    WHERE beds IS NOT NULL AND price_minor > 0 AND standing IN ('active', 'rental')
    GROUP BY market, bedrooms
),
""" + YIELDS_SQL

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
        # Days are UTC dates, as in the metrics code.
        self.con.execute("SET TimeZone = 'UTC'")
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
        result = self.con.execute(sql)
        names = [d[0] for d in result.description]
        return [dict(zip(names, row)) for row in result.fetchall()]

    def stop(self):
        self.con.close()


if __name__ == "__main__":
    sys.exit(DuckDbPeer().main())

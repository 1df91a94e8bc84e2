#!/usr/bin/env python3
"""PySpark (local mode) peer for `realty bench`: per-market figures over a JSON-lines file
of listing events, timed. Contract, definitions and output: see peer_common.py.

    python bench/peers/spark_peer.py --events FILE.jsonl [--threads N] [--repeat R]

Needs Java 17 or newer: $JAVA_HOME/bin/java, else `java` on PATH (JAVA_HOME is then derived
from where that link resolves). Spark binds to 127.0.0.1 only and runs without its web UI.
"""

import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # leave no __pycache__ in the work tree
sys.path.insert(0, HERE)

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

MIN_JAVA = 17

# The figures of peer_common.py. Latest event per listing with a row_number() window
# (partition by id, order by observed_at desc), which Spark turns into a top-1-per-group
# limit on both sides of the shuffle. The alternative, max_by(struct(...), observed_at),
# cannot use a hash aggregate (a struct buffer is not fixed-width) and becomes a
# SortAggregate, also sorting on both sides; the window measured the same or slightly
# faster (200k events). The windowed rows are exploded into their scopes (LATERAL VIEW
# explode of the scope keys), and the per-(scope, day) counters and the latest events' scopes
# read the same exploded rows, so the file is scanned and shuffled once (Spark reuses the
# exchange). observed_at is strictly
# increasing per listing (the generator guarantees it), so row_number() has no ties to
# break. percentile_disc(0.5) is the value at rank ceil(n/2) (checked: n = 4 gives the 2nd
# value, n = 5 the 3rd); it skips NULLs (the CASEs without ELSE below) and gives NULL when
# all are. It returns a double; prices stay below 2^53 minor units, so that is exact. Days
# are UTC dates (spark.sql.session.timeZone).
QUERY = """
WITH parsed AS (
    SELECT
        *,
        listing.market.city_state AS city,
        listing.market.zip AS zip,
        listing.property_type AS property_type
    FROM {events}
),
ranked AS (
    SELECT
        observed_at,
        kind,
        listing.status AS status,
        listing.offer AS offer,
        listing.price_minor AS price_minor,
        listing.living_area_sqft AS living_area_sqft,
        listing.beds AS beds,
        listing.on_market_date AS on_market_date,
        listing.rent_estimate_minor AS rent_estimate_minor,
        """ + SCOPE_KEYS_SQL.replace("{array}", "array").replace(
            "zip_geo", "(" + ZIP_GEO_SQL + ")") + """ AS scopes,
        changes.price.old AS old_price,
        changes.price.`new` AS new_price,
        changes.fields AS changed_fields,
        lag(kind) OVER (PARTITION BY listing.id ORDER BY observed_at) AS prev_kind,
        lag(listing.status) OVER (PARTITION BY listing.id ORDER BY observed_at) AS prev_status,
        row_number() OVER (PARTITION BY listing.id ORDER BY observed_at DESC) AS recency
    FROM parsed
),
scoped AS (
    SELECT ranked.*, market
    FROM ranked LATERAL VIEW explode(scopes) s AS market
    WHERE market IS NOT NULL
),
daily AS (
    SELECT
        market,
        to_date(observed_at) AS day,
        max(observed_at) AS last_observed,
        count_if(""" + NEW_LISTING_SQL + """) AS new_listings,
        count_if(""" + PRICE_CUT_SQL.format(contains="array_contains") + """) AS price_cuts
    FROM scoped
    GROUP BY market, to_date(observed_at)
),
as_of AS (
    SELECT market, to_date(max(last_observed)) AS today
    FROM daily
    GROUP BY market
),
counters AS (
    SELECT
        daily.market,
        sum(new_listings) AS new_listings_7d,
        sum(price_cuts) AS price_cuts_7d
    FROM daily JOIN as_of ON daily.market = as_of.market
    WHERE day BETWEEN date_sub(today, 6) AND today
    GROUP BY daily.market
),
standing AS (
    SELECT
        scoped.*,
        today,
""" + STANDING_SQL + """    FROM scoped JOIN as_of ON scoped.market = as_of.market
    WHERE recency = 1
),
inventory AS (
    SELECT
        market,
        count_if(standing = 'active') AS active_listings,
        count_if(standing = 'pending') AS pending_listings,
        avg(CASE WHEN standing = 'active' THEN price_minor END) / 100 AS average_price,
        percentile_disc(0.5) WITHIN GROUP (
            ORDER BY CASE WHEN standing = 'active' AND price_minor > 0 THEN price_minor END)
            / 100 AS median_price,
        percentile_disc(0.5) WITHIN GROUP (
            ORDER BY CASE WHEN standing = 'active' AND price_minor > 0
                               AND living_area_sqft > 0
                          THEN CAST(price_minor AS DOUBLE) / living_area_sqft END)
            / 100 AS median_price_per_sqft,
        percentile_disc(0.5) WITHIN GROUP (
            ORDER BY CASE WHEN standing = 'active' AND living_area_sqft > 0
                          THEN living_area_sqft END)
            AS median_living_area_sqft,
        CAST(percentile_disc(0.5) WITHIN GROUP (
            ORDER BY CASE WHEN standing = 'active'
                          THEN datediff(today, on_market_date) END) AS BIGINT)
            AS median_days_on_market,
        percentile_disc(0.5) WITHIN GROUP (
            ORDER BY CASE WHEN standing = 'active' AND rent_estimate_minor > 0
                               AND price_minor > 0
                          THEN 12 * CAST(rent_estimate_minor AS DOUBLE) / price_minor END)
            AS estimate_yield
    FROM standing
    GROUP BY market
),
by_bedrooms AS (
    SELECT
        market,
        least(beds, 4) AS bedrooms,
        count_if(standing = 'rental') AS rentals,
        percentile_disc(0.5) WITHIN GROUP (
            ORDER BY CASE WHEN standing = 'rental' THEN price_minor END) AS median_rent,
        count_if(standing = 'active') AS sale_listings,
        percentile_disc(0.5) WITHIN GROUP (
            ORDER BY CASE WHEN standing = 'active' THEN price_minor END) AS median_sale_price
    FROM standing
    WHERE beds IS NOT NULL AND price_minor > 0 AND standing IN ('active', 'rental')
    GROUP BY market, least(beds, 4)
),
""" + YIELDS_SQL


def find_java():
    """JAVA_HOME of a Java >= 17, or PeerError saying what is missing."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and os.access(os.path.join(java_home, "bin", "java"), os.X_OK):
        java = os.path.join(java_home, "bin", "java")
    else:
        found = shutil.which("java")
        if not found:
            raise PeerError(
                f"Java not found: Spark needs Java {MIN_JAVA} or newer; install it (Debian: "
                "apt-get install openjdk-17-jre-headless) or set JAVA_HOME")
        java = os.path.realpath(found)
        java_home = os.path.dirname(os.path.dirname(java))
    try:
        shown = subprocess.run([java, "-version"], capture_output=True, text=True,
                               timeout=120).stderr
    except (OSError, subprocess.SubprocessError) as e:
        raise PeerError(f"cannot run {java} -version: {e}") from e
    match = re.search(r'version "(\d+)(?:\.(\d+))?', shown)
    if not match:
        raise PeerError(f"cannot tell the version of {java}: {shown.strip()!r}")
    major = int(match.group(1))
    if major == 1:  # "1.8.0_392" style
        major = int(match.group(2) or 0)
    if major < MIN_JAVA:
        raise PeerError(f"{java} is Java {major}; Spark 4 needs Java {MIN_JAVA} or newer")
    return java_home


class SparkPeer(Peer):
    engine = "spark"

    def prepare(self):
        os.environ["JAVA_HOME"] = find_java()
        # Loopback only: no network here, and no hostname lookups to wait on.
        os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

    def start(self, threads):
        try:
            from pyspark.sql import SparkSession
            from pyspark.sql import types as T
        except ImportError as e:
            raise PeerError(f"pyspark is not installed ({e}): "
                            "pip install -r bench/peers/requirements.txt") from e

        cores = threads if threads > 0 else all_cores()
        log_config = os.path.join(HERE, "log4j2.properties")
        self.spark = (
            SparkSession.builder
            .master(f"local[{threads}]" if threads > 0 else "local[*]")
            .appName("realty-bench-peer")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            # Local mode: one shuffle partition per thread, not the cluster default of 200.
            .config("spark.sql.shuffle.partitions", str(cores))
            .config("spark.default.parallelism", str(cores))
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.driver.memory", "2g")
            .config("spark.driver.extraJavaOptions",
                    f"-Dlog4j2.configurationFile=file:{log_config}")
            .getOrCreate()
        )
        self.spark.sparkContext.setLogLevel("ERROR")
        # Explicit schema: only the fields the figures need; the JSON reader ignores
        # every other key, and a field left out reads as NULL. `observed_at` is parsed as
        # a timestamp (microseconds), so fractional seconds and offsets compare right.
        # FAILFAST: a line that does not parse is an error, not a row of NULLs.
        self.schema = T.StructType([
            T.StructField("kind", T.StringType()),
            T.StructField("observed_at", T.TimestampType()),
            T.StructField("changes", T.StructType([
                T.StructField("price", T.StructType([
                    T.StructField("old", T.LongType()),
                    T.StructField("new", T.LongType()),
                ])),
                T.StructField("fields", T.ArrayType(T.StringType())),
            ])),
            T.StructField("listing", T.StructType([
                T.StructField("id", T.StringType()),
                T.StructField("status", T.StringType()),
                T.StructField("offer", T.StringType()),
                T.StructField("price_minor", T.LongType()),
                T.StructField("living_area_sqft", T.LongType()),
                T.StructField("beds", T.LongType()),
                T.StructField("on_market_date", T.DateType()),
                T.StructField("rent_estimate_minor", T.LongType()),
                T.StructField("property_type", T.StringType()),
                T.StructField("market", T.StructType([
                    T.StructField("city_state", T.StringType()),
                    T.StructField("zip", T.StringType()),
                ])),
            ])),
        ])
        return self.spark.sparkContext.defaultParallelism

    def version(self):
        return self.spark.version

    def read(self, path):
        # No .cache(): every run reads and parses the file again.
        return self.spark.read.schema(self.schema).option("mode", "FAILFAST").json(path)

    def count_events(self, path):
        return self.read(path).count()

    def query(self, path):
        rows = self.spark.sql(QUERY, events=self.read(path)).collect()
        return [row.asDict() for row in rows]

    def stop(self):
        self.spark.stop()

    def describe_error(self, error):
        # A Py4J error's text is the whole Java stack trace: name the outermost exception
        # and the innermost cause, one line each.
        outer = getattr(error, "java_exception", None)
        if outer is None:
            return super().describe_error(error)
        try:
            inner = outer
            while inner.getCause() is not None:
                inner = inner.getCause()
            lines = [str(outer.toString()).strip().splitlines()[0]]
            if not inner.equals(outer):
                lines.append("caused by: " + str(inner.toString()).strip().splitlines()[0])
        except Exception:  # noqa: BLE001 - the JVM may be gone
            return super().describe_error(error)
        return "\n  ".join(lines)


if __name__ == "__main__":
    sys.exit(SparkPeer().main())

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

The figures, per scope, as the Rust metrics code defines them
(shared/metrics/src/aggregate/, rents.rs, batch.rs; docs/metrics.md). A scope is a market:
the listing's city (`listing.market.city_state`) or ZIP (`listing.market.zip`), across
property types or for the listing's own (`listing.property_type`): four scope kinds, each
reported under its key (`city#nashville-tn#all`, `zip#37201#condo`, SCOPE_KEYS_SQL). A
listing stands in the scopes of its latest event; an event counts in its own listing's.

1. Each listing's (`listing.id`) latest event decides its standing: greatest top-level
   `observed_at`. The generator makes `observed_at` strictly increasing per listing, so there
   are no ties; `observed_at` is compared as a parsed timestamp, never as text. A delisted
   listing stands nowhere. Otherwise: `offer` sale and `status` active = active; sale and
   `under_contract` / `pending` = pending; rent and active = an active rental.
2. A scope's as-of time is the latest `observed_at` of the events counted in it; "today" is its UTC date
   and the 7-day window the 7 days ending on it.
3. `active_listings`, `pending_listings`: counts. `average_price`: mean `price_minor` / 100.
   Medians are nearest-rank lower medians (the value at rank ceil(n/2) ascending, never an
   average) over the positive values: `median_price` of `price_minor` / 100;
   `median_price_per_sqft` of `price_minor / living_area_sqft` (double) / 100 over those with
   an area; `median_living_area_sqft`; `median_days_on_market` of (as-of date -
   `on_market_date`) in days, over those with a date.
4. Counted per event, on its observation day, in the event's own market, against the
   listing's previous event: `new_listings_7d`, events of sale listings now in inventory
   (active or pending) that are `new` (a first sight, or a return after a delisting), or
   whose previous event left the listing coming soon, sold or off the market (announced, or
   back on the market); `price_cuts_7d`, `changed` events of sale listings (offer unchanged)
   on the market before and after (neither status coming_soon, sold nor off_market) whose
   `changes.price.new` < `changes.price.old`. The event contract (docs/events.md) makes
   these equal to our comparison with the listing's previous state: `changes.price.old` is
   its price at the previous observation.
5. Yields: per bedroom group (0, 1, 2, 3, 4+) the active rentals and their median rent, the
   active sale listings and their median price. A group with >= 3 rentals and a sale listing
   is matched; over the matched groups `gross_yield` = sum(n * 12 * median rent) /
   sum(n * median price), n = the group's sale listings (`yield_basis` "market_rents"); with no
   matched group, the median over active sale listings with a positive
   `rent_estimate_minor` of 12 * estimate / price ("rent_estimates"); else none.
   `price_to_rent` = 1 / `gross_yield`.
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


# The end of both engines' query, the same SQL in both dialects: the yields from the
# `by_bedrooms` (per market and bedroom group: rentals, median_rent, sale_listings,
# median_sale_price), `inventory` (per market, with estimate_yield) and `counters` CTEs
# before it, and the figures of every market with active listings (definition 5 above).
# Where a listing stands by its latest event, as ours (`Standing`): the same in both dialects.
# New listings and cuts, over the events with their listing's previous event's kind and
# status (`prev_kind`, `prev_status`: NULL for a first event). PRICE_CUT_SQL names the
# engine's array-membership function as {contains}.
NEW_LISTING_SQL = """
    offer = 'sale' AND kind <> 'delisted'
    AND status IN ('active', 'under_contract', 'pending')
    AND ((kind = 'new' AND (prev_kind IS NULL OR prev_kind = 'delisted'))
         OR (prev_kind IS NOT NULL AND prev_kind <> 'delisted'
             AND prev_status IN ('coming_soon', 'sold', 'off_market')))
"""

PRICE_CUT_SQL = """
    kind = 'changed' AND offer = 'sale'
    AND status NOT IN ('coming_soon', 'sold', 'off_market')
    AND prev_status NOT IN ('coming_soon', 'sold', 'off_market')
    AND new_price < old_price
    AND NOT coalesce({contains}(changed_fields, 'offer'), false)
"""

# The keys of the scopes an event's listing counts in (`Scope::key`, docs/metrics.md): its
# city across types and for its type, and its ZIP likewise where it has one (abroad the ZIP
# is `<country>/<code>`). `||` is NULL when a side is, so a listing without a ZIP has two
# NULL keys, which each engine drops after exploding the list. Over columns `city`, `zip`
# and `property_type`; {array} is the engine's list constructor.
SCOPE_KEYS_SQL = """{array}(
            'city#' || city || '#all',
            'city#' || city || '#' || property_type,
            'zip#' || zip_geo || '#all',
            'zip#' || zip_geo || '#' || property_type)"""

ZIP_GEO_SQL = """CASE WHEN contains(city, '/') THEN split_part(city, '/', 1) || '/' || zip
                 ELSE zip END"""

STANDING_SQL = """
        CASE
            WHEN kind = 'delisted' THEN NULL
            WHEN offer = 'sale' AND status = 'active' THEN 'active'
            WHEN offer = 'sale' AND status IN ('under_contract', 'pending') THEN 'pending'
            WHEN offer = 'rent' AND status = 'active' THEN 'rental'
        END AS standing
"""

YIELDS_SQL = """
matched AS (
    SELECT
        market,
        sum(sale_listings * 12 * CAST(median_rent AS DOUBLE)) AS yearly_rents,
        sum(sale_listings * CAST(median_sale_price AS DOUBLE)) AS prices
    FROM by_bedrooms
    WHERE rentals >= 3 AND median_sale_price > 0
    GROUP BY market
),
yields AS (
    SELECT
        inventory.*,
        new_listings_7d,
        price_cuts_7d,
        CASE
            WHEN yearly_rents > 0 AND prices > 0 THEN 'market_rents'
            WHEN estimate_yield > 0 THEN 'rent_estimates'
        END AS yield_basis,
        CASE
            WHEN yearly_rents > 0 AND prices > 0 THEN yearly_rents / prices
            WHEN estimate_yield > 0 THEN estimate_yield
        END AS gross_yield
    FROM inventory
    LEFT JOIN matched ON inventory.market = matched.market
    LEFT JOIN counters ON inventory.market = counters.market
    WHERE active_listings > 0
)
SELECT *, 1 / gross_yield AS price_to_rent
FROM yields
"""


# Every figure a peer reports per market, with its JSON type: the names of the query's
# result columns and of `MarketFigures` in cli/src/bench/compute.rs.
INT_FIGURES = ("active_listings", "pending_listings", "new_listings_7d", "price_cuts_7d")
OPTIONAL_INT_FIGURES = ("median_days_on_market",)
FLOAT_FIGURES = ("median_price", "average_price", "median_price_per_sqft",
                 "median_living_area_sqft", "gross_yield", "price_to_rent")
TEXT_FIGURES = ("yield_basis",)
COLUMNS = ("market",) + INT_FIGURES + OPTIONAL_INT_FIGURES + FLOAT_FIGURES + TEXT_FIGURES


def to_markets(rows):
    """Result rows (dicts keyed by `COLUMNS`) -> JSON objects sorted by market."""
    markets = []
    for row in rows:
        missing = [c for c in COLUMNS if c not in row]
        if missing:
            raise PeerError(f"the query returned no column {', '.join(missing)}")
        market = row["market"]
        if market is None:
            raise PeerError("a counted listing has no listing.market.city_state")
        figures = {"market": str(market)}
        for name in INT_FIGURES:
            figures[name] = int(row[name] or 0)
        for name in OPTIONAL_INT_FIGURES:
            figures[name] = None if row[name] is None else int(row[name])
        for name in FLOAT_FIGURES:
            figures[name] = _finite_or_none(row[name], name, market)
        for name in TEXT_FIGURES:
            figures[name] = None if row[name] is None else str(row[name])
        if figures["median_price"] is None:
            raise PeerError(f"market {market!r} has listings but no median price")
        markets.append(figures)
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
        """Read and parse `path` afresh and return the figures as a list of dicts keyed by
        `COLUMNS`, one per market with active listings, in Python."""
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

// Numbers, dates and market names as people read them (Intl, in the reader's language):
// shared by the dashboard (app.js) and the offline report of `make demo`.
"use strict";

const fmt = {
  count: new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 }),
  decimal: new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 }),
  days: new Intl.NumberFormat(undefined, { style: "unit", unit: "day", unitDisplay: "long", maximumFractionDigits: 0 }),
  change: new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1, signDisplay: "exceptZero" }),
  percent: new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1 }),
  // A price cut rounded down, as the alerts' `drop_pct`: 14.96 % reads 14.9 %, not the 15 % of
  // an alert threshold it did not reach.
  cut: new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1, roundingMode: "trunc" }),
  date: new Intl.DateTimeFormat(undefined, { dateStyle: "medium" }),
  dayMonth: new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short" }),
  // A snapshot's day (its period, at midnight UTC) read as that day wherever the reader is.
  day: new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeZone: "UTC" }),
  dayShort: new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short", timeZone: "UTC" }),
  dateTime: new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" }),
  time: new Intl.DateTimeFormat(undefined, { timeStyle: "short" }),
  ago: new Intl.RelativeTimeFormat(undefined, { numeric: "auto" }),
};

// Square feet in a square metre: the figures are kept per sq ft (docs/metrics.md).
const SQFT_PER_SQM = 10.763910416709722;

// A market's currency and unit of area: its report's `units`, else read from its key as the
// API reads it (`ma/casablanca`: dirhams and square metres; `nashville-tn`: dollars and sq ft).
function unitsOf(market, units) {
  if (units) {
    return units;
  }
  const country = /^([a-z]{2})\//.exec(market || "");
  if (!country) {
    return { currency: "USD", area: "sqft" };
  }
  return { currency: country[1] === "ma" ? "MAD" : null, area: "sqm" };
}

// Whole amounts in `currency`, compact with `short` ("$1.2M"); a plain number when the
// currency is not known. Each format is built once.
const moneyFormats = new Map();
function money(currency, short) {
  const key = (currency || "") + (short ? " short" : "");
  if (!moneyFormats.has(key)) {
    const options = currency ? { style: "currency", currency } : {};
    options.maximumFractionDigits = short ? 1 : 0;
    if (short) {
      options.notation = "compact";
    }
    moneyFormats.set(key, new Intl.NumberFormat(undefined, options));
  }
  return moneyFormats.get(key);
}

// The unit the per-area figures are shown in, and what turns a per-sq-ft figure into it.
function perArea(units) {
  return units.area === "sqm"
    ? { label: "m²", name: "square metre", perSqft: SQFT_PER_SQM }
    : { label: "sq ft", name: "square foot", perSqft: 1 };
}

// A per-sq-ft figure in `area`'s unit (null stays null).
const inArea = (value, area) => (value == null ? null : value * area.perSqft);

// "nashville-tn" reads "Nashville, TN"; any other key is shown as it is.
function placeName(market) {
  const m = /^([a-z0-9-]+)-([a-z]{2})$/.exec(market);
  if (!m) {
    return market;
  }
  const city = m[1].split("-").map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join(" ");
  return city + ", " + m[2].toUpperCase();
}

function ago(when) {
  if (!when) {
    return "never";
  }
  const minutes = Math.round((new Date(when) - Date.now()) / 60000);
  if (Math.abs(minutes) < 60) {
    return fmt.ago.format(minutes, "minute");
  }
  if (Math.abs(minutes) < 48 * 60) {
    return fmt.ago.format(Math.round(minutes / 60), "hour");
  }
  return fmt.ago.format(Math.round(minutes / 1440), "day");
}

const or = (value, format) => (value == null ? "not known yet" : format.format(value));

function changeText(pct, days) {
  if (pct == null) {
    return "no " + days + "-day change yet";
  }
  return fmt.change.format(pct / 100) + " in " + days + " days";
}

// An element with a class and its text.
function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) {
    e.className = className;
  }
  if (text != null) {
    e.textContent = text;
  }
  return e;
}

// A market's headline figures as labelled boxes (a <dl>'s children), in its `units`.
function fillFigures(list, live, trends, units) {
  list.replaceChildren();
  const cash = money(units.currency);
  const area = perArea(units);
  const figure = (label, value) => {
    const box = el("div");
    box.append(el("dt", "", label), el("dd", "", value));
    list.appendChild(box);
  };
  figure("Median asking price", or(live.median_price, cash));
  const change = trends.median_price_change_7d_pct;
  figure("Change in 7 days", change == null ? "not known yet" : fmt.change.format(change / 100));
  figure("7-day average", or(trends.median_price_ma_7d, cash));
  figure("30-day average", or(trends.median_price_ma_30d, cash));
  figure("Homes for sale", or(live.active_listings, fmt.count));
  figure("Under contract", or(live.pending_listings, fmt.count));
  figure("New listings, 7 days", or(live.new_listings_7d, fmt.count));
  figure("Price cuts, 7 days", or(live.price_cuts_7d, fmt.count));
  figure("Price per " + area.label, or(inArea(live.median_price_per_sqft, area), cash));
  figure("Days on the market", or(live.median_days_on_market, fmt.days));
  figure("Homes for rent", or(live.active_rentals, fmt.count));
  figure("Typical rent a month", or(live.median_rent, cash));
  // Yearly rent over price, of homes matched by bedrooms (or the listings' own estimates).
  figure("Gross rental yield", or(live.gross_yield, fmt.percent));
  figure("Price-to-rent ratio", or(live.price_to_rent, fmt.decimal));
}

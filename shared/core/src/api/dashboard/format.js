// Numbers, dates and market names as people read them (Intl, in the reader's language):
// shared by the dashboard (app.js) and the offline report of `make demo`.
"use strict";

const fmt = {
  money: new Intl.NumberFormat(undefined, { style: "currency", currency: "USD", maximumFractionDigits: 0 }),
  moneyShort: new Intl.NumberFormat(undefined, { style: "currency", currency: "USD", notation: "compact", maximumFractionDigits: 1 }),
  count: new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 }),
  decimal: new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 }),
  days: new Intl.NumberFormat(undefined, { style: "unit", unit: "day", unitDisplay: "long", maximumFractionDigits: 0 }),
  change: new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1, signDisplay: "exceptZero" }),
  percent: new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1 }),
  date: new Intl.DateTimeFormat(undefined, { dateStyle: "medium" }),
  dayMonth: new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short" }),
  // A snapshot's day (its period, at midnight UTC) read as that day wherever the reader is.
  day: new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeZone: "UTC" }),
  dayShort: new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short", timeZone: "UTC" }),
  dateTime: new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" }),
  time: new Intl.DateTimeFormat(undefined, { timeStyle: "short" }),
  ago: new Intl.RelativeTimeFormat(undefined, { numeric: "auto" }),
};

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

// A market's headline figures as labelled boxes (a <dl>'s children).
function fillFigures(list, live, trends) {
  list.replaceChildren();
  const figure = (label, value) => {
    const box = el("div");
    box.append(el("dt", "", label), el("dd", "", value));
    list.appendChild(box);
  };
  figure("Median asking price", or(live.median_price, fmt.money));
  const change = trends.median_price_change_7d_pct;
  figure("Change in 7 days", change == null ? "not known yet" : fmt.change.format(change / 100));
  figure("7-day average", or(trends.median_price_ma_7d, fmt.money));
  figure("30-day average", or(trends.median_price_ma_30d, fmt.money));
  figure("Homes for sale", or(live.active_listings, fmt.count));
  figure("Under contract", or(live.pending_listings, fmt.count));
  figure("New listings, 7 days", or(live.new_listings_7d, fmt.count));
  figure("Price cuts, 7 days", or(live.price_cuts_7d, fmt.count));
  figure("Price per sq ft", or(live.median_price_per_sqft, fmt.money));
  figure("Days on the market", or(live.median_days_on_market, fmt.days));
  figure("Homes for rent", or(live.active_rentals, fmt.count));
  figure("Typical rent a month", or(live.median_rent, fmt.money));
  // Yearly rent over price, of homes matched by bedrooms (or the listings' own estimates).
  figure("Gross rental yield", or(live.gross_yield, fmt.percent));
  figure("Price-to-rent ratio", or(live.price_to_rent, fmt.decimal));
}

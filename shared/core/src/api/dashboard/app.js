// The dashboard: the market list, one market's figures and charts, the sources' health,
// read from the API with the token the person gave the page (kept in local storage) and
// read again every minute.
"use strict";

const TOKEN_KEY = "realty-stream-token";
const REFRESH_MS = 60 * 1000;
// A market without a change for this long is shown as late (sources are polled hourly).
const LATE_MINUTES = 3 * 60;

const fmt = {
  money: new Intl.NumberFormat(undefined, { style: "currency", currency: "USD", maximumFractionDigits: 0 }),
  moneyShort: new Intl.NumberFormat(undefined, { style: "currency", currency: "USD", notation: "compact", maximumFractionDigits: 1 }),
  count: new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 }),
  days: new Intl.NumberFormat(undefined, { style: "unit", unit: "day", unitDisplay: "long", maximumFractionDigits: 0 }),
  change: new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1, signDisplay: "exceptZero" }),
  date: new Intl.DateTimeFormat(undefined, { dateStyle: "medium" }),
  time: new Intl.DateTimeFormat(undefined, { timeStyle: "short" }),
  ago: new Intl.RelativeTimeFormat(undefined, { numeric: "auto" }),
};

class TokenRefused extends Error {}
class NoFigures extends Error {}

async function api(path) {
  const token = localStorage.getItem(TOKEN_KEY) || "";
  if (!token) {
    throw new TokenRefused("");
  }
  const response = await fetch(path, { headers: { Authorization: "Bearer " + token } });
  if (response.status === 401 || response.status === 403) {
    throw new TokenRefused("That access token was not accepted.");
  }
  const body = await response.json().catch(() => ({}));
  if (response.status === 404) {
    throw new NoFigures(body.error || "not found");
  }
  if (!response.ok) {
    throw new Error(body.error || response.statusText);
  }
  return body;
}

const $ = (id) => document.getElementById(id);

function show(...ids) {
  for (const id of ["token-form", "markets-view", "market-view", "health-view"]) {
    $(id).hidden = !ids.includes(id);
  }
}

function say(text) {
  $("status").textContent = text;
}

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

function line(parent, text, className) {
  const span = document.createElement("span");
  span.className = "market-line" + (className ? " " + className : "");
  span.textContent = text;
  parent.appendChild(span);
}

async function showMarkets() {
  const page = await api("/markets?limit=200");
  const list = $("markets");
  list.replaceChildren();
  for (const m of page.markets) {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.market = m.market;
    const title = document.createElement("span");
    title.className = "market-title";
    title.textContent = placeName(m.market);
    button.appendChild(title);
    if (m.as_of == null) {
      line(button, "No figures yet: they appear once its listings have been read.");
    } else {
      line(button, or(m.median_price, fmt.money) + " median asking price");
      const pct = m.median_price_change_7d_pct;
      line(button, changeText(pct, 7), pct > 0 ? "up" : pct < 0 ? "down" : "");
      line(button, or(m.active_listings, fmt.count) + " homes for sale");
      line(button, or(m.price_cuts_7d, fmt.count) + " price cuts in the last 7 days");
      line(button, "Updated " + ago(m.as_of), "quiet");
    }
    button.addEventListener("click", () => {
      location.hash = "market/" + encodeURIComponent(m.market);
    });
    const item = document.createElement("li");
    item.appendChild(button);
    list.appendChild(item);
  }
  if (page.markets.length === 0) {
    say("No markets are watched yet: add one with `realty markets add`.");
  }
  $("markets-view").dataset.ready = String(page.markets.length);
}

function figure(list, label, value) {
  const box = document.createElement("div");
  const dt = document.createElement("dt");
  dt.textContent = label;
  const dd = document.createElement("dd");
  dd.textContent = value;
  box.append(dt, dd);
  list.appendChild(box);
}

async function showMarket(market) {
  $("market-name").textContent = placeName(market);
  let report;
  try {
    report = await api("/markets/" + encodeURIComponent(market));
  } catch (e) {
    if (e instanceof NoFigures) {
      $("market-figures").replaceChildren();
      $("charts").replaceChildren();
      say("No figures for " + placeName(market) + " yet: they appear once its listings have been read.");
      return;
    }
    throw e;
  }
  const live = report.live;
  const trends = report.trends;
  const list = $("market-figures");
  list.replaceChildren();
  figure(list, "Median asking price", or(live.median_price, fmt.money));
  const change = trends.median_price_change_7d_pct;
  figure(list, "Change in 7 days", change == null ? "not known yet" : fmt.change.format(change / 100));
  figure(list, "7-day average", or(trends.median_price_ma_7d, fmt.money));
  figure(list, "30-day average", or(trends.median_price_ma_30d, fmt.money));
  figure(list, "Homes for sale", or(live.active_listings, fmt.count));
  figure(list, "Under contract", or(live.pending_listings, fmt.count));
  figure(list, "New listings, 7 days", or(live.new_listings_7d, fmt.count));
  figure(list, "Price cuts, 7 days", or(live.price_cuts_7d, fmt.count));
  figure(list, "Price per sq ft", or(live.median_price_per_sqft, fmt.money));
  figure(list, "Days on the market", or(live.median_days_on_market, fmt.days));
  const drawn = Charts.draw($("charts"), report.daily, fmt);
  $("ma-note").textContent =
    "Charts show one point per day over the last " + report.daily.length +
    " days with figures. The average lines are worked out in this page from those daily " +
    "figures; the averages in the boxes above are the ones the pipeline stored.";
  $("market-view").dataset.ready = market + ":" + drawn;
}

function healthRow(body, cells, late) {
  const row = document.createElement("tr");
  cells.forEach((text, i) => {
    const td = document.createElement("td");
    td.textContent = text;
    if (i === 1 && late) {
      td.className = "late";
    }
    row.appendChild(td);
  });
  body.appendChild(row);
}

async function showHealth() {
  const health = await api("/health");
  const sources = $("sources").tBodies[0];
  sources.replaceChildren();
  for (const s of health.sources) {
    const used = fmt.count.format(s.requests_this_month);
    const budget = s.monthly_budget == null ? used : used + " of " + fmt.count.format(s.monthly_budget);
    healthRow(sources, [s.source, ago(s.last_poll_at), budget], s.last_poll_at == null);
  }
  const markets = $("freshness").tBodies[0];
  markets.replaceChildren();
  for (const m of health.markets) {
    const late = m.minutes_since_event == null || m.minutes_since_event > LATE_MINUTES;
    healthRow(markets, [placeName(m.market), ago(m.last_event_at)], late);
  }
}

function askForToken(sentence) {
  show("token-form");
  say("");
  $("token-message").textContent = sentence;
  $("token").focus();
}

// Draws what the address asks for: `#market/NAME` or the list.
async function render() {
  let hash = "";
  try {
    hash = decodeURIComponent(location.hash.replace(/^#/, ""));
  } catch {
    // A hand-typed, malformed address: show the market list.
  }
  const market = hash.startsWith("market/") ? hash.slice("market/".length) : null;
  try {
    if (market) {
      await showMarket(market);
      show("market-view", "health-view");
    } else {
      await showMarkets();
      show("markets-view", "health-view");
    }
    await showHealth();
    if (!$("status").textContent.startsWith("No ")) {
      say("");
    }
    $("updated").textContent = "Updated " + fmt.time.format(new Date()) + ", every minute";
  } catch (e) {
    if (e instanceof TokenRefused) {
      askForToken(
        (e.message ? e.message + " " : "") +
        "Paste the access token of your market API here. Whoever runs the stack gets it " +
        "with the command `realty api token`."
      );
    } else {
      say("The figures cannot be read right now (" + e.message + "). The page tries again every minute.");
    }
  }
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  localStorage.setItem(TOKEN_KEY, $("token").value.trim());
  $("token").value = "";
  $("token-form").hidden = true;
  render();
});
window.addEventListener("hashchange", () => {
  say("");
  render();
});
render();
setInterval(() => {
  if ($("token-form").hidden) {
    render();
  }
}, REFRESH_MS);

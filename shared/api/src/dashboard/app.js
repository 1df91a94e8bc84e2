// The dashboard: the market list, one market's figures, charts, listings of interest and
// alerts, the sources' health, read from the API with the token the person gave the page
// (kept in local storage until "Forget the token") and read again every minute.
"use strict";

const TOKEN_KEY = "realty-stream-token";
const REFRESH_MS = 60 * 1000;
// Markets the list shows: the API's largest page.
const MARKETS_PAGE = 200;
// A market without a change for this long is shown as late (sources are polled hourly).
const LATE_MINUTES = 3 * 60;

class TokenRefused extends Error {}
class NoFigures extends Error {}
// An answer to a render that a newer one (a change of market, the timer, a click) replaced:
// dropped, so that a slow answer never draws one market's figures under another's name.
class Superseded extends Error {}
let renders = 0;

// A market's path: each part of its key encoded, the `/` of a key outside the US
// (`ma/casablanca`) kept, since API Gateway may refuse or decode an encoded one.
function marketPath(market) {
  return "/markets/" + market.split("/").map(encodeURIComponent).join("/");
}

async function api(path) {
  const token = localStorage.getItem(TOKEN_KEY) || "";
  if (!token) {
    throw new TokenRefused("");
  }
  const asked = renders;
  let response;
  try {
    response = await fetch(path, { headers: { Authorization: "Bearer " + token } });
  } catch (e) {
    // A failed request of a replaced render says nothing of the current one.
    throw asked === renders ? e : new Superseded();
  }
  const body = await response.json().catch(() => ({}));
  if (asked !== renders) {
    throw new Superseded();
  }
  if (response.status === 401 || response.status === 403) {
    throw new TokenRefused("That access token was not accepted.");
  }
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

function line(parent, text, className) {
  parent.appendChild(el("span", "market-line" + (className ? " " + className : ""), text));
}

// The list of markets; what the status line should say of it ("" for nothing).
async function showMarkets() {
  const page = await api("/markets?limit=" + MARKETS_PAGE);
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
      line(button, or(m.median_price, money(unitsOf(m.market).currency)) + " median asking price");
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
  $("markets-view").dataset.ready = String(page.markets.length);
  if (page.markets.length === 0) {
    return "No markets are watched yet: add one with `realty markets add`.";
  }
  return page.next
    ? "The first " + page.markets.length + " markets (by key) are shown here; `realty report --market M` reads any of them."
    : "";
}

// A market's listings of interest (`/markets/{m}/listings?kind=`): three short lists.
async function showListings(market) {
  const box = $("interest");
  if (box.dataset.market !== market) {
    box.replaceChildren();
    for (const k of Lists.KINDS) {
      const part = el("section", "list");
      part.id = "interest-" + k.kind;
      part.append(el("h3", "", k.title), el("ul", "rows"));
      box.appendChild(part);
    }
    box.dataset.market = market;
  }
  await Promise.all(Lists.KINDS.map(async (k) => {
    const ul = $("interest-" + k.kind).querySelector("ul");
    try {
      const page = await api(marketPath(market) + "/listings?kind=" + k.kind + "&limit=10");
      Lists.fillListings(ul, k.kind, page.listings);
    } catch (e) {
      if (e instanceof TokenRefused || e instanceof Superseded) {
        throw e;
      }
      ul.replaceChildren(el("li", "empty", unavailable(e)));
    }
  }));
  box.dataset.ready = market;
}

// Until an API has a list (an older stack: 404), or while it cannot be read, the list says so.
function unavailable(e) {
  return e instanceof NoFigures ? "Not available from this API." : "Cannot be read right now (" + e.message + ").";
}

// The alert feed of the market in view: its type filter and the pages read so far (each
// page's `before`; the last one is in view), so that "older" and "newer" move through it.
const feed = { market: null, type: "", pages: [null], next: null };

// Another market's feed starts again from its newest page, with no type.
function resetFeed(market) {
  Object.assign(feed, { market, type: "", pages: [null], next: null });
  $("alert-type").value = "";
}

async function showAlerts(market) {
  if (feed.market !== market) {
    resetFeed(market);
  }
  const ul = $("alerts");
  const query = new URLSearchParams({ market, limit: "20" });
  if (feed.type) {
    query.set("type", feed.type);
  }
  const before = feed.pages[feed.pages.length - 1];
  if (before) {
    query.set("before", before);
  }
  try {
    const page = await api("/alerts?" + query);
    Lists.fillAlerts(ul, page.alerts);
    feed.next = page.next;
  } catch (e) {
    if (e instanceof TokenRefused || e instanceof Superseded) {
      throw e;
    }
    ul.replaceChildren(el("li", "empty", unavailable(e)));
    feed.next = null;
  }
  $("alerts-older").hidden = !feed.next;
  $("alerts-newer").hidden = feed.pages.length < 2;
  ul.dataset.ready = market;
}

// One market's figures, charts, lists and alerts; what the status line should say of it.
async function showMarket(market) {
  let report;
  try {
    report = await api(marketPath(market));
  } catch (e) {
    if (e instanceof NoFigures) {
      // Nothing of the market in view before may stay under this one's name.
      $("market-name").textContent = placeName(market);
      for (const id of ["market-figures", "charts", "interest", "alerts"]) {
        $(id).replaceChildren();
      }
      for (const id of ["market-as-of", "ma-note"]) {
        $(id).textContent = "";
      }
      delete $("interest").dataset.market;
      delete $("interest").dataset.ready;
      delete $("alerts").dataset.ready;
      resetFeed(market);
      $("alerts-older").hidden = true;
      $("alerts-newer").hidden = true;
      $("market-view").dataset.ready = market + ":0";
      return "No figures for " + placeName(market) + " yet: they appear once its listings have been read.";
    }
    throw e;
  }
  $("market-name").textContent = placeName(market);
  fillFigures($("market-figures"), report.live, report.trends, unitsOf(report.market, report.units));
  // How old the figures are (the page's own "Updated" is when it asked): a quiet market's
  // counts run to its last change, which may be long ago.
  const asOf = $("market-as-of");
  const when = report.live.as_of;
  const late = when == null || Date.now() - new Date(when) > LATE_MINUTES * 60000;
  asOf.textContent = when == null
    ? "No change has reached these figures yet."
    : "Figures as of " + fmt.dateTime.format(new Date(when)) + " (" + ago(when) + ")" +
      (late ? ": nothing newer has come from the sources since" : "");
  asOf.className = late ? "late" : "quiet";
  const drawn = Charts.draw($("charts"), report);
  $("ma-note").textContent =
    "Charts show one point per day over the last " + report.daily.length +
    " days with figures; the averages are the ones the pipeline stored with each day.";
  $("market-view").dataset.ready = market + ":" + drawn;
  await Promise.all([showListings(market), showAlerts(market)]);
  return "";
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
  offerToForget();
}

// The button that removes the token from this browser, shown while one is kept.
function offerToForget() {
  $("forget-token").hidden = !localStorage.getItem(TOKEN_KEY);
}

// Removes the token from this browser (a shared or lent computer) and what the page read
// with it; the page asks for a token again.
function forgetToken() {
  localStorage.removeItem(TOKEN_KEY);
  // Any answer still on its way belongs to a replaced render: dropped.
  renders += 1;
  for (const id of ["markets", "market-figures", "charts", "interest", "alerts"]) {
    $(id).replaceChildren();
  }
  for (const id of ["sources", "freshness"]) {
    $(id).tBodies[0].replaceChildren();
  }
  for (const id of ["market-name", "market-as-of", "ma-note", "updated"]) {
    $(id).textContent = "";
  }
  askForToken(
    "This browser no longer keeps the access token. Paste it here to see your markets again."
  );
}

// Draws what the address asks for: `#market/NAME` or the list.
// The feed's controls, off while a render runs: each click draws the whole view again (a
// few requests), and quick clicks would go past the API's rate and page twice.
function feedControls(enabled) {
  for (const id of ["alerts-older", "alerts-newer", "alert-type"]) {
    $(id).disabled = !enabled;
  }
}

async function render() {
  renders += 1;
  const mine = renders;
  feedControls(false);
  try {
    await draw();
  } finally {
    if (mine === renders) {
      feedControls(true);
    }
  }
}

async function draw() {
  let hash = "";
  try {
    hash = decodeURIComponent(location.hash.replace(/^#/, ""));
  } catch {
    // A hand-typed, malformed address: show the market list.
  }
  const market = hash.startsWith("market/") ? hash.slice("market/".length) : null;
  try {
    let notice;
    if (market) {
      notice = await showMarket(market);
      show("market-view", "health-view");
    } else {
      notice = await showMarkets();
      show("markets-view", "health-view");
    }
    await showHealth();
    say(notice);
    $("updated").textContent = "Updated " + fmt.time.format(new Date()) + ", every minute";
  } catch (e) {
    if (e instanceof Superseded) {
      return;
    }
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
  offerToForget();
  render();
});
$("forget-token").addEventListener("click", forgetToken);
// The feed again after a change of its type or page: the whole view is drawn again, so that
// the feed and the figures above it are of the same market and the same moment.
function reloadAlerts() {
  render();
}
$("alert-type").addEventListener("change", () => {
  Object.assign(feed, { type: $("alert-type").value, pages: [null], next: null });
  reloadAlerts();
});
$("alerts-older").addEventListener("click", () => {
  if (feed.next) {
    feed.pages.push(feed.next);
    reloadAlerts();
  }
});
$("alerts-newer").addEventListener("click", () => {
  if (feed.pages.length > 1) {
    feed.pages.pop();
    reloadAlerts();
  }
});
window.addEventListener("hashchange", () => {
  say("");
  render();
});
offerToForget();
render();
setInterval(() => {
  if ($("token-form").hidden) {
    render();
  }
}, REFRESH_MS);

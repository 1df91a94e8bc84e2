// The offline report (`make demo`, `realty report --format html`): builds the page from the
// data embedded in it (#report-data: per market what `GET /markets/{m}` answers, its
// listings of interest when the stack has them, and its alerts) with the dashboard's own
// formats (format.js), charts (charts.js) and list rows (lists.js), inlined beside it.
"use strict";

(() => {
  // Alerts shown before the rest are folded away: the demo raises hundreds.
  const FIRST_ALERTS = 20;
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const main = document.getElementById("report");
  main.replaceChildren();
  document.getElementById("source").textContent =
    "Generated " + fmt.dateTime.format(new Date(data.generated_at)) + " from " + data.source + ".";

  // The markets at a glance.
  const table = el("table", "summary");
  const head = table.createTHead().insertRow();
  for (const title of ["Market", "Homes for sale", "Median asking price", "Change in 7 days", "Price cuts, 7 days", "Alerts"]) {
    head.appendChild(el("th", "", title));
  }
  const body = table.createTBody();
  for (const m of data.markets) {
    const row = body.insertRow();
    const name = el("a", "", placeName(m.market));
    name.href = "#market-" + m.market;
    row.insertCell().appendChild(name);
    for (const text of [
      or(m.live.active_listings, fmt.count),
      or(m.live.median_price, money(unitsOf(m.market, m.units).currency)),
      changeText(m.trends.median_price_change_7d_pct, 7),
      or(m.live.price_cuts_7d, fmt.count),
      fmt.count.format(m.alerts.length),
    ]) {
      row.insertCell().textContent = text;
    }
  }
  main.appendChild(table);
  if (data.markets.length === 0) {
    main.appendChild(el("p", "", "No market had figures when the report was written."));
  }
  if (data.latency) {
    const l = data.latency;
    const ms = (v) => fmt.count.format(v) + " ms";
    main.appendChild(el("p", "latency",
      "From a listing's change reaching the pipeline to its alert going out, over " + fmt.count.format(l.alerts) +
      " alerts: half took under " + ms(l.p50_ms) + ", 99 in 100 under " + ms(l.p99_ms) + ", the slowest " + ms(l.max_ms) + "."));
  }

  for (const m of data.markets) {
    const section = el("section", "market");
    section.id = "market-" + m.market;
    section.appendChild(el("h2", "", placeName(m.market)));
    if (m.live.as_of) {
      section.appendChild(el("p", "quiet", "Figures as of " + fmt.dateTime.format(new Date(m.live.as_of)) + "."));
    }
    const figures = el("dl", "figures");
    fillFigures(figures, m.live, m.trends, unitsOf(m.market, m.units));
    const charts = el("div", "charts");
    section.append(figures, charts);
    main.appendChild(section);
    Charts.draw(charts, m);

    if (m.listings) {
      section.appendChild(el("h3", "", "Listings worth a look"));
      const lists = el("div", "lists");
      for (const k of Lists.KINDS) {
        const part = el("section", "list");
        const ul = el("ul", "rows");
        part.append(el("h3", "", k.title), ul);
        Lists.fillListings(ul, k.kind, m.listings[k.kind] || []);
        lists.appendChild(part);
      }
      section.appendChild(lists);
    }

    section.appendChild(el("h3", "", "Alerts raised, newest first"));
    const newest = m.alerts;
    const first = el("ul", "rows alerts");
    Lists.fillAlerts(first, newest.slice(0, FIRST_ALERTS));
    section.appendChild(first);
    if (newest.length > FIRST_ALERTS) {
      const more = el("details");
      const rest = el("ul", "rows alerts");
      Lists.fillAlerts(rest, newest.slice(FIRST_ALERTS));
      more.append(el("summary", "", "The " + fmt.count.format(newest.length - FIRST_ALERTS) + " older alerts"), rest);
      section.appendChild(more);
    }
  }

  if (data.run) {
    const run = el("details");
    run.append(el("summary", "", "How this run was made"), el("pre", "", JSON.stringify(data.run, null, 2)));
    main.appendChild(run);
  }
  document.body.dataset.ready = "drawn";
})();

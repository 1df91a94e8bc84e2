// The market list, read from the API with the token the person gave the page.
"use strict";
const tokenKey = "realty-stream-token";

async function api(path) {
  const token = localStorage.getItem(tokenKey) || "";
  const response = await fetch(path, { headers: { Authorization: "Bearer " + token } });
  if (response.status === 401 || response.status === 403) {
    throw new Error("token");
  }
  const body = await response.json();
  if (!response.ok) {
    throw new Error(body.error || response.statusText);
  }
  return body;
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
}

const money = new Intl.NumberFormat(undefined, { style: "currency", currency: "USD", maximumFractionDigits: 0 });

async function showMarkets() {
  const status = document.getElementById("status");
  try {
    const page = await api("/markets?limit=200");
    const body = document.querySelector("#markets tbody");
    body.replaceChildren();
    for (const m of page.markets) {
      const row = document.createElement("tr");
      cell(row, m.market);
      cell(row, m.active_listings ?? "-");
      cell(row, m.median_price == null ? "-" : money.format(m.median_price));
      cell(row, m.median_price_change_7d_pct == null ? "-" : m.median_price_change_7d_pct.toFixed(1) + " %");
      cell(row, m.price_cuts_7d ?? "-");
      cell(row, m.as_of ? new Date(m.as_of).toLocaleString() : "not yet");
      body.appendChild(row);
    }
    status.textContent = "";
  } catch (e) {
    if (e.message === "token") {
      document.getElementById("token-form").hidden = false;
      status.textContent = "Enter the API token (realty api token) to see the markets.";
    } else {
      status.textContent = "Cannot read the markets: " + e.message;
    }
  }
}

document.getElementById("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  localStorage.setItem(tokenKey, document.getElementById("token").value.trim());
  document.getElementById("token-form").hidden = true;
  showMarkets();
});

showMarkets();
setInterval(showMarkets, 60000);

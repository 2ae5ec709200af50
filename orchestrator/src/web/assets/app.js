// Ferrotron's dashboard: the live parts, nothing else. Pages work without
// this script; it only keeps fresh what changes while one looks.
//
// - [data-live]: re-fetched as an HTML fragment from this server every
//   two seconds while the page is visible; a fragment answered with
//   `X-Ferrotron-Final: 1` is the last one.
// - pre[data-follow]: a running job's log, streamed from the API (the
//   response stays open while the job runs) and appended as text.
"use strict";

function live(el) {
  const url = el.dataset.live;
  let stopped = false;
  async function tick() {
    if (stopped) return;
    if (!document.hidden) {
      try {
        const r = await fetch(url, { credentials: "same-origin", cache: "no-store" });
        if (r.ok) {
          const html = await r.text();
          // The fragment is this server's HTML, every value escaped there.
          if (el.innerHTML !== html) el.innerHTML = html;
          if (r.headers.get("x-ferrotron-final") === "1") {
            stopped = true;
            el.dataset.final = "1";
            return;
          }
        }
      } catch (e) {
        // The server restarts or the network drops: try again later.
      }
    }
    setTimeout(tick, 2000);
  }
  setTimeout(tick, 2000);
}

async function follow(pre) {
  const url = pre.dataset.follow;
  pre.textContent = "";
  try {
    const r = await fetch(url, { credentials: "same-origin" });
    if (!r.ok || !r.body) return;
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 20;
      pre.appendChild(document.createTextNode(decoder.decode(value, { stream: true })));
      if (atEnd) pre.scrollTop = pre.scrollHeight;
    }
    pre.dataset.done = "1";
  } catch (e) {
    pre.dataset.done = "error";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-live]").forEach(live);
  document.querySelectorAll("pre[data-follow]").forEach(follow);
});

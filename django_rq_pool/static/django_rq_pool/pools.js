// Worker pools page: refreshes the server-rendered fragment every 2 s and sends actions with fetch.
// Everything inserted comes from the server's escaped templates; text from the registry is never
// turned into markup here.
(function () {
  "use strict";
  const root = document.getElementById("rqpool-root");
  if (!root) return;
  const status = document.getElementById("rqpool-refresh");
  const every = Number(root.dataset.interval) || 2000;
  const headers = { "X-Requested-With": "fetch" };
  let inFlight = false;

  const bySlot = (container) => {
    const found = new Map();
    container.querySelectorAll("[data-slot]").forEach((el) => found.set(el.dataset.slot, el));
    return found;
  };
  const byPool = (container) => {
    const found = new Map();
    container.querySelectorAll("section[data-pool]").forEach((el) => found.set(el.dataset.pool, el));
    return found;
  };

  function markGone(section) {
    section.classList.add("rqpool-gone");
    const state = section.querySelector(".rqpool-state");
    if (state) {
      state.textContent = "gone";
      state.dataset.state = "gone";
    }
    section.querySelectorAll(".rqpool-action button, .rqpool-action input").forEach((el) => {
      el.disabled = true;
    });
    if (!section.querySelector(".rqpool-gone-note")) {
      const note = document.createElement("p");
      note.className = "rqpool-gone-note errornote";
      note.textContent = "This pool is gone: it stopped or its heartbeat expired.";
      section.querySelector("h2").after(note);
    }
  }

  function merge(next) {
    const oldSlots = bySlot(root);
    const newSlots = bySlot(next);
    // Replies (and confirmation forms) stay next to where they were clicked.
    oldSlots.forEach((el, slot) => {
      const reply = el.querySelector(".rqpool-reply");
      const target = newSlots.get(slot);
      if (reply && reply.innerHTML.trim() && target) {
        target.querySelector(".rqpool-reply").innerHTML = reply.innerHTML;
      }
    });
    // A number being typed keeps its value and focus.
    const active = document.activeElement;
    let typing = null;
    if (active && root.contains(active) && active.name === "count") {
      const slot = active.closest("[data-slot]");
      typing = slot && { slot: slot.dataset.slot, value: active.value };
    }
    // A pool that vanished stays on the page, marked gone, instead of freezing or silently leaving.
    const fresh = byPool(next);
    byPool(root).forEach((section, id) => {
      if (!fresh.has(id)) {
        markGone(section);
        const none = next.querySelector(".rqpool-none");
        if (none) none.remove();
        const recent = next.querySelector(".rqpool-recent");
        next.insertBefore(section, recent);
      }
    });
    root.replaceChildren(...next.childNodes);
    if (typing) {
      const slot = bySlot(root).get(typing.slot);
      const input = slot && slot.querySelector('input[name="count"]');
      if (input) {
        input.value = typing.value;
        input.focus();
      }
    }
  }

  async function refresh() {
    if (inFlight) return;
    inFlight = true;
    try {
      const response = await fetch(root.dataset.fragmentUrl, { headers, credentials: "same-origin", cache: "no-store" });
      if (!response.ok) throw new Error("HTTP " + response.status);
      const next = document.createElement("div");
      next.innerHTML = await response.text();
      merge(next);
      if (status) status.textContent = "Updated " + new Date().toLocaleTimeString();
    } catch (error) {
      if (status) status.textContent = "Not updated: " + error.message;
    } finally {
      inFlight = false;
    }
  }

  // A refresh may replace the page's elements while an action is in flight, so the reply is
  // written to whichever element holds that slot when the answer arrives.
  function showReply(slotName, content, asMarkup) {
    const slot = bySlot(root).get(slotName);
    const reply = slot && slot.querySelector(".rqpool-reply");
    if (!reply) return;
    if (asMarkup) reply.innerHTML = content;
    else reply.textContent = content;
  }

  root.addEventListener("submit", async (event) => {
    const form = event.target.closest("form.rqpool-action");
    if (!form) return;
    event.preventDefault();
    const slot = form.closest("[data-slot]");
    const slotName = slot ? slot.dataset.slot : "";
    const body = new FormData(form, event.submitter || undefined);
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    showReply(slotName, "Sending…", false);
    try {
      const response = await fetch(form.action, { method: "POST", body, headers, credentials: "same-origin" });
      const text = await response.text();
      const html = (response.headers.get("Content-Type") || "").startsWith("text/html");
      if (html && response.status < 500 && response.status !== 403) showReply(slotName, text, true);
      else showReply(slotName, "Refused: HTTP " + response.status, false);
    } catch (error) {
      showReply(slotName, "Not sent: " + error.message, false);
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
    // The pool applies a change within about a second: show it now and once more shortly after.
    refresh();
    setTimeout(refresh, 800);
  });

  root.addEventListener("click", (event) => {
    const cancel = event.target.closest(".rqpool-cancel");
    if (!cancel) return;
    event.preventDefault();
    const reply = cancel.closest(".rqpool-reply");
    if (reply) reply.replaceChildren();
  });

  setInterval(refresh, every);
})();

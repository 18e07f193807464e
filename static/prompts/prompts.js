// Prompts library: tabs, the message editor, variables in links, presentation mode.
(function () {
  "use strict";
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  function grow(t) { t.style.height = "auto"; t.style.height = Math.min(t.scrollHeight + 2, window.innerHeight * 0.7) + "px"; }
  document.addEventListener("input", (e) => { if (e.target.matches("textarea.autogrow")) grow(e.target); });
  document.addEventListener("DOMContentLoaded", () => { $$("textarea.autogrow").forEach(grow); });

  function varsQuery() {
    const form = $("#vars-form");
    if (!form) return "";
    const params = new URLSearchParams();
    new FormData(form).forEach((value, key) => { if (value !== "") params.append(key, value); });
    const q = params.toString();
    return q ? "?" + q : "";
  }

  document.addEventListener("click", (e) => {
    const t = e.target;
    // Present and Open carry the variable values typed on the page.
    const withVars = t.closest("[data-with-vars]");
    if (withVars && $("#vars-form")) { e.preventDefault(); location.href = withVars.getAttribute("href").split("?")[0] + varsQuery(); return; }
    if (t.closest("[data-add-edit-message]")) {
      const list = $("#pr-messages");
      const last = $$("[data-edit-message]", list).pop();
      const wrap = document.createElement("div");
      wrap.innerHTML = $("#pr-message-template").innerHTML.trim();
      const el = wrap.firstElementChild;
      if (last && $("select", last).value === "user") $("select", el).value = "assistant";
      list.appendChild(el);
      $("textarea", el).focus();
      return;
    }
    const rm = t.closest("[data-remove-edit-message]");
    if (rm) { const el = rm.closest("[data-edit-message]"); if ($$("[data-edit-message]").length > 1) el.remove(); else $("textarea", el).value = ""; return; }
    const copy = t.closest("[data-copy-link]");
    if (copy) {
      const url = new URL(copy.dataset.copyLink, location.href).href;
      navigator.clipboard.writeText(url).then(() => { copy.textContent = "Copied"; setTimeout(() => { copy.textContent = "Copy"; }, 1200); });
    }
  });

  // chat / completion panes of the editor
  document.addEventListener("change", (e) => {
    if (!e.target.matches("[data-mode]")) return;
    const mode = e.target.value;
    $$("[data-mode-pane]").forEach((p) => { p.hidden = p.dataset.modePane !== mode; });
  });

  // The editor lists the {{variables}} it finds as you type (the server checks them on save).
  const PLACEHOLDER = /\{\{\s*([A-Za-z_][A-Za-z0-9_.\-]*)\s*\}\}/g;
  function detect() {
    const out = $("#pr-detected");
    if (!out) return;
    const mode = ($("[data-mode]:checked") || {}).value || "chat";
    const texts = mode === "completion" ? [$("#f-text").value] : $$("[name=system], [data-edit-message] textarea").map((t) => t.value);
    const names = [];
    texts.forEach((text) => { for (const m of text.matchAll(PLACEHOLDER)) if (!names.includes(m[1])) names.push(m[1]); });
    out.replaceChildren();
    if (!names.length) { out.textContent = "No variables: write {{name}} to add one."; return; }
    out.append("Variables: ");
    names.forEach((n) => { const c = document.createElement("code"); c.className = "pr-var-chip"; c.textContent = n; out.append(c, " "); });
  }
  document.addEventListener("input", (e) => { if (e.target.closest("[data-prompt-editor]")) detect(); });
  document.addEventListener("change", (e) => { if (e.target.matches("[data-mode]")) detect(); });
  document.addEventListener("DOMContentLoaded", detect);

  // -- presentation mode -------------------------------------------------------------------------
  const page = $("[data-present-page]");
  if (!page) return;
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !document.fullscreenElement && !document.querySelector("dialog[open]")) location.href = page.dataset.exitUrl;
  });
  let stick = true;
  const scroller = () => $("#chat-scroll");
  document.addEventListener("scroll", (e) => {
    const s = scroller();
    if (e.target === s) stick = s.scrollHeight - s.scrollTop - s.clientHeight < 120;
  }, true);
  document.addEventListener("htmx:wsOpen", () => { const s = $("[data-ws-state]"); if (s) { s.textContent = "live"; s.className = "muted small live"; } });
  document.addEventListener("htmx:wsClose", () => { const s = $("[data-ws-state]"); if (s) { s.textContent = "reconnecting…"; s.className = "muted small down"; } });
  document.addEventListener("htmx:wsBeforeSend", () => { stick = true; });
  document.addEventListener("htmx:wsAfterMessage", () => {
    $$("#messages textarea.autogrow").forEach(grow);
    const s = scroller();
    if (s && stick) s.scrollTop = s.scrollHeight;
    window.Playground && window.Playground.addCopyButtons(document);
  });
  document.addEventListener("DOMContentLoaded", () => { const d = $("#draft"); if (d) d.focus(); });
  document.addEventListener("click", (e) => {
    if (!e.target.closest("[data-fullscreen]")) return;
    if (document.fullscreenElement) document.exitFullscreen(); else document.documentElement.requestFullscreen().catch(() => {});
  });
})();

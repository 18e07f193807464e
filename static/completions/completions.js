// The completions playground: the editing htmx cannot do (variables from {{names}}, showing
// the result over the prompt and going back to editing, what the model supports, live token
// count). Run and Stop go over the websocket (htmx ws); Ctrl/Cmd+Enter is static/js/app.js.
(function () {
  "use strict";
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const csrf = () => { try { return JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"]; } catch (e) { return ""; } };
  const prompt = () => $("#cmp-prompt");
  const editor = () => $("[data-editor]");

  function grow(t) { t.style.height = "auto"; t.style.height = Math.min(t.scrollHeight + 2, window.innerHeight * 0.5) + "px"; }
  document.addEventListener("input", (e) => { if (e.target.matches("textarea.autogrow")) grow(e.target); });

  // -- the result over the prompt, and back to editing ------------------------------------------
  function showResult(on) {
    const ed = editor();
    if (!ed) return;
    ed.classList.toggle("showing-result", on && !!$("#result").children.length);
    if (!on) { const p = prompt(); p.focus(); }
  }
  function editAtEnd(text) {
    const p = prompt();
    if (text !== undefined) p.value = text;
    showResult(false);
    p.setSelectionRange(p.value.length, p.value.length);
    p.scrollTop = p.scrollHeight;
    variables(); scheduleCount();
  }

  document.addEventListener("htmx:wsOpen", () => { const s = $("[data-ws-state]"); if (s) { s.textContent = "live"; s.className = "muted small live"; } });
  document.addEventListener("htmx:wsClose", () => { const s = $("[data-ws-state]"); if (s) { s.textContent = "reconnecting…"; s.className = "muted small down"; } });
  document.addEventListener("htmx:wsAfterMessage", () => {
    const errors = $("#chat-errors");
    if (errors && errors.textContent.trim()) {
      const f = errors.dataset.field;
      const el = f ? $("#cmp-form [name='" + f + "']") : null;
      if (el) {
        const d = el.closest("details"); if (d) { d.open = true; d.hidden = false; }
        if (el === prompt()) showResult(false);
        el.focus();
      }
      return;
    }
    if ($("#result").children.length) showResult(true);
    const hint = $("#cmp-hint"); if (hint) hint.remove();
  });

  document.addEventListener("click", (e) => {
    const t = e.target;
    if (t.closest("[data-edit-prompt]")) { editAtEnd(); return; }
    const keep = t.closest("[data-keep]");
    if (keep) {
      const all = $$("#result [data-completion]");
      const chosen = all[Number(keep.dataset.choice || 0)] || all[0];
      editAtEnd(prompt().value + (chosen ? chosen.value : ""));
      return;
    }
    if (t.closest("[data-doc]") && !t.closest(".lp") && !window.getSelection().toString()) { editAtEnd(); return; }
    const heat = t.closest("[data-heat-toggle]");
    if (heat) {
      const on = heat.getAttribute("aria-pressed") !== "true";
      heat.setAttribute("aria-pressed", on);
      $$("#result .cmp-doc").forEach((d) => d.classList.toggle("heat-off", !on));
      const legend = $("[data-heat-legend]"); if (legend) legend.hidden = !on;
      return;
    }
    const ex = t.closest("[data-example]");
    if (ex) { editAtEnd(ex.dataset.example); return; }
    const open = t.closest("[data-open-dialog]");
    if (open) {
      const d = $("#chat-dialog");
      $("#dialog-title").textContent = open.textContent.replace(/^[^A-Za-z]+/, "");
      $("#dialog-body").innerHTML = '<span class="spinner"></span>';
      if (!d.open) d.showModal();
      return;
    }
    if (t.closest("[data-close-dialog]")) { $("#chat-dialog").close(); return; }
  });
  document.addEventListener("keydown", (e) => {
    if ((e.key === "Enter" || e.key === "e") && !e.ctrlKey && !e.metaKey && e.target.matches("[data-doc]")) { e.preventDefault(); editAtEnd(); }
  });
  document.addEventListener("htmx:afterSwap", (e) => { if (e.target.id === "dialog-body" && window.Playground) window.Playground.addCopyButtons(e.target); });
  document.addEventListener("htmx:prompt", (e) => { if (e.detail.prompt === null) $("#chat-dialog").close(); });

  // -- variables: an input for every {{name}} in the prompt -----------------------------------------
  const NAME = /\{\{\s*([A-Za-z_][A-Za-z0-9_.\-]*)\s*\}\}/g;
  function variables() {
    const p = prompt(); if (!p) return;
    const names = [];
    for (const m of p.value.matchAll(NAME)) if (!names.includes(m[1])) names.push(m[1]);
    const box = $("[data-var-fields]");
    const existing = new Map($$("[data-var]", box).map((el) => [el.dataset.var, el]));
    const tpl = $("#var-template").innerHTML;
    names.forEach((name) => {
      let el = existing.get(name);
      if (!el) {
        const wrap = document.createElement("div");
        wrap.innerHTML = tpl.replaceAll("__NAME__", name).trim();
        el = wrap.firstElementChild;
        // names may hold characters an id or a selector would trip on: set them as text
        el.dataset.var = name;
        $("label", el).textContent = name;
      }
      box.appendChild(el);  // keeps the prompt's order; an existing field keeps its value
      existing.delete(name);
    });
    existing.forEach((el) => el.remove());
    $("#cmp-variables").hidden = names.length === 0;
  }

  // -- sliders mirror the number fields (the number is what is sent; blank = model default) ---------
  document.addEventListener("input", (e) => {
    const t = e.target;
    if (t.matches("[data-range-for]")) { document.getElementById(t.dataset.rangeFor).value = t.value; }
    else if (t.matches(".param-num")) { const r = $("[data-range-for='" + t.id + "']"); if (r && t.value !== "") r.value = t.value; }
    if (t === prompt()) { variables(); scheduleCount(); }
    if (t.matches("[name=max_tokens], [name=suffix]")) scheduleCount();
  });

  // -- what the model takes: disable the rest, and say why ------------------------------------------
  let unsupported = {};
  try { unsupported = JSON.parse($("#cmp-unsupported").textContent); } catch (e) { unsupported = {}; }
  function capabilities() {
    const picker = $("[data-model-picker]"); if (!picker) return;
    const opt = picker.selectedOptions[0];
    const reasons = unsupported[picker.value] || {};
    const caps = opt && opt.dataset.capabilities ? opt.dataset.capabilities.split(" ").filter(Boolean) : [];
    const note = $("#cap-note");
    if (note && opt) {
      const parts = [];
      if (opt.dataset.contextLength) parts.push(Number(opt.dataset.contextLength).toLocaleString() + " token context");
      if (opt.dataset.inputPrice) parts.push("$" + opt.dataset.inputPrice + " / $" + opt.dataset.outputPrice + " per 1M");
      if (!caps.length) parts.push("capabilities unknown: the server decides");
      else if (!caps.includes("completion")) parts.push("a chat model: text completions may be refused");
      note.textContent = parts.join(" · ");
    }
    $$("[data-param]").forEach((el) => {
      const why = reasons[el.dataset.param] || "";
      $$("input, textarea", el).forEach((i) => { i.disabled = !!why; });
      el.toggleAttribute("data-unsupported", !!why);
      el.title = why;
      const r = $(".reason", el); if (r) r.textContent = why;
    });
  }
  document.addEventListener("change", (e) => { if (e.target.matches("[data-model-picker]")) { capabilities(); scheduleCount(); } });

  // -- live token count and the context-window check ------------------------------------------------
  let timer = null, seq = 0;
  function scheduleCount() { clearTimeout(timer); timer = setTimeout(count, 300); }
  function count() {
    const picker = $("[data-model-picker]"), out = $("#cmp-count");
    if (!picker || !out || !prompt()) return;
    const opt = picker.selectedOptions[0];
    const maxTokens = ($("[name=max_tokens]") || {}).value || "";
    const suffix = ($("[name=suffix]") || {}).value || "";
    const mine = ++seq;
    const body = new URLSearchParams({ text: prompt().value + suffix, model_key: picker.value, max_tokens: maxTokens, context_length: opt ? opt.dataset.contextLength || "" : "" });
    fetch("/api/tokens/count", { method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": csrf() }, body })
      .then((r) => r.ok ? r.json() : null).then((data) => {
        if (!data || mine !== seq) return;
        let text = data.tokens.toLocaleString() + " prompt tokens";
        const inPrice = opt && parseFloat(opt.dataset.inputPrice);
        if (inPrice) {
          text += " · ≈ $" + (data.tokens * inPrice / 1e6).toFixed(4);
          const outPrice = parseFloat(opt.dataset.outputPrice);
          if (outPrice && maxTokens) text += " + up to $" + (maxTokens * outPrice / 1e6).toFixed(4) + " out";
        }
        if (data.context_length) text += " · " + (data.percent ?? "?") + "% of " + Number(data.context_length).toLocaleString();
        out.textContent = text;
        out.title = data.message || "";
        out.classList.toggle("over", data.fits === false);
        const ctx = $("#ctx-check");
        if (ctx) { ctx.textContent = data.fits === false ? data.message : ""; ctx.className = "ctx-line small" + (data.fits === false ? " error" : ""); }
      }).catch(() => {});
  }

  function init() {
    $$("textarea.autogrow").forEach(grow);
    capabilities();
    variables();
    scheduleCount();
    const p = prompt();
    if (p && !editor().classList.contains("showing-result")) { p.focus(); p.setSelectionRange(p.value.length, p.value.length); }
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init); else init();
})();

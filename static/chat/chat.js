// The chat playground: the editing htmx cannot do (add / move / delete messages, images,
// tabs, live token count, capability hints). Runs go over the websocket (htmx ws).
(function () {
  "use strict";
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const form = () => $("#chat-form");
  const csrf = () => { const m = document.body.getAttribute("hx-headers"); try { return JSON.parse(m)["X-CSRFToken"]; } catch (e) { return ""; } };
  const uid = () => Math.random().toString(16).slice(2, 14).padEnd(12, "0");

  // -- auto-growing textareas ---------------------------------------------------------------
  function grow(t) { t.style.height = "auto"; t.style.height = Math.min(t.scrollHeight + 2, window.innerHeight * 0.6) + "px"; }
  function growAll(root) { $$("textarea.autogrow", root).forEach(grow); }
  document.addEventListener("input", (e) => { if (e.target.matches("textarea.autogrow")) grow(e.target); });

  // -- scrolling: follow the stream while the reader is at the bottom ----------------------------
  let stick = true;
  function scroller() { return $("#chat-scroll"); }
  document.addEventListener("scroll", (e) => {
    const s = scroller();
    if (e.target === s) stick = s.scrollHeight - s.scrollTop - s.clientHeight < 80;
  }, true);
  function follow() { const s = scroller(); if (s && stick) s.scrollTop = s.scrollHeight; }

  // -- websocket state, and what arrives -----------------------------------------------------
  document.addEventListener("htmx:wsOpen", () => { const s = $("[data-ws-state]"); if (s) { s.textContent = "live"; s.className = "muted small live"; } });
  document.addEventListener("htmx:wsClose", () => { const s = $("[data-ws-state]"); if (s) { s.textContent = "reconnecting…"; s.className = "muted small down"; } });
  document.addEventListener("htmx:wsAfterMessage", () => {
    const id = $("#conversation-id");
    if (id && id.value && !location.pathname.startsWith("/chat/" + id.value + "/")) {
      history.replaceState(null, "", "/chat/" + id.value + "/");
    }
    const empty = $("#chat-empty");
    if (empty && $("#messages").children.length) empty.remove();
    growAll($("#messages"));
    const errors = $("#chat-errors");
    if (errors && errors.dataset.field && errors.textContent.trim()) {
      const f = errors.dataset.field;
      const el = f.startsWith("m-") ? $("#" + f + " textarea") : form().querySelector("[name='" + f + "']");
      if (el) { const d = el.closest("details"); if (d) d.open = true; el.focus({ preventScroll: false }); }
    }
    follow();
    window.Playground && window.Playground.addCopyButtons(document);
    scheduleCount();
  });
  document.addEventListener("htmx:wsBeforeSend", () => { stick = true; });

  // -- messages: add, delete, move, role, edit ------------------------------------------------------
  function newMessage(role, text) {
    const tpl = $("#message-template");
    const html = tpl.innerHTML.replaceAll("__UID__", uid());
    const wrap = document.createElement("div");
    wrap.innerHTML = html.trim();
    const el = wrap.firstElementChild;
    setRole(el, role);
    const ta = $("textarea[name=content]", el);
    ta.value = text || "";
    $("#messages").appendChild(el);
    htmx.process(el);
    const empty = $("#chat-empty"); if (empty) empty.remove();
    grow(ta);
    return el;
  }
  function setRole(el, role) {
    el.dataset.role = role;
    el.classList.remove("msg-user", "msg-assistant");
    el.classList.add("msg-" + role);
    $("[data-role-field]", el).value = role;
    const label = $("[data-role-toggle]", el);
    if (label) label.textContent = role === "user" ? "User" : "Assistant";
    const ta = $("textarea[name=content]", el);
    if (ta) ta.placeholder = role === "user" ? "User message" : "Assistant message (a few-shot example answer)";
  }
  document.addEventListener("click", (e) => {
    const t = e.target;
    const add = t.closest("[data-add-message]");
    if (add) {
      const draft = $("#draft");
      const el = newMessage(add.dataset.addMessage, draft.value);
      // images attached to the draft move to the new message
      const ids = $("[name=draft_images]").value;
      if (ids) {
        $("[data-images-field]", el).value = ids;
        $("[data-attachments]", el).innerHTML = $("#composer-input [data-attachments]").innerHTML;
        $("#composer-input [data-attachments]").innerHTML = "";
        $("[name=draft_images]").value = "";
      }
      draft.value = ""; grow(draft); draft.focus(); follow(); scheduleCount();
      return;
    }
    const msg = t.closest("[data-message]");
    if (t.closest("[data-delete]") && msg) { msg.remove(); scheduleCount(); return; }
    if (t.closest("[data-move]") && msg) {
      if (t.closest("[data-move]").dataset.move === "up" && msg.previousElementSibling) msg.parentNode.insertBefore(msg, msg.previousElementSibling);
      else if (t.closest("[data-move]").dataset.move === "down" && msg.nextElementSibling) msg.parentNode.insertBefore(msg.nextElementSibling, msg);
      return;
    }
    if (t.closest("[data-role-toggle]") && msg) { setRole(msg, msg.dataset.role === "user" ? "assistant" : "user"); return; }
    if (t.closest("[data-edit]") && msg) {
      const ta = $("textarea[data-content]", msg);
      const editing = ta.hidden;
      ta.hidden = !editing;
      $$("[data-view], .choice-tabs", msg).forEach((v) => { v.hidden = editing; });
      if (editing) { grow(ta); ta.focus(); }
      return;
    }
    const useChoice = t.closest("[data-use-choice]");
    if (useChoice && msg) {
      const text = $("[data-choice-text]", useChoice.closest("[data-pane]")).value;
      $("textarea[data-content]", msg).value = text;
      $$("[data-use-choice]", msg).forEach((b) => b.classList.remove("btn-primary"));
      useChoice.classList.add("btn-primary");
      return;
    }
    const rm = t.closest("[data-remove-image]");
    if (rm) { const holder = rm.closest("[data-attachments]"); rm.closest(".thumb").remove(); syncImages(holder); return; }
    if (t.closest("[data-add-column]")) { addColumn(); return; }
    if (t.closest("[data-remove-column]")) { t.closest("[data-column-row]").remove(); return; }
    const ex = t.closest("[data-example]");
    if (ex) { const target = $(ex.dataset.example); target.value = ex.dataset.exampleText; grow(target); target.dispatchEvent(new Event("input", { bubbles: true })); return; }
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
  document.addEventListener("htmx:afterSwap", (e) => {
    if (e.target.id === "dialog-body") window.Playground && window.Playground.addCopyButtons(e.target);
    if (e.target.id === "tools-check") toolChoices();
  });
  // Cancelled prompt (Save as prompt): close the dialog again.
  document.addEventListener("htmx:prompt", (e) => { if (e.detail.prompt === null) $("#chat-dialog").close(); });

  // -- compare columns ----------------------------------------------------------------------
  function addColumn() {
    const rows = $$("[data-column-row]");
    if (rows.length >= 5) return;
    const tpl = $("#column-template");
    const wrap = document.createElement("div");
    wrap.innerHTML = tpl.innerHTML.trim();
    const row = wrap.firstElementChild;
    // Default to the next model in the list, so "add column" usually compares two models.
    const main = $("[data-model-picker]");
    const sel = $("select", row);
    const used = new Set([main.value, ...rows.map((r) => $("select", r).value)]);
    const free = Array.from(sel.options).find((o) => !used.has(o.value));
    if (free) sel.value = free.value;
    $("#compare-columns").appendChild(row);
    $("#compare-on").checked = true;
  }

  // -- tool choice options from the tools editor ----------------------------------------------
  function toolChoices() {
    const names = ($("#tools-check [data-tool-names]") || { dataset: { toolNames: "" } }).dataset.toolNames.split(",").filter(Boolean);
    const sel = $("[data-tool-choice]");
    if (!sel) return;
    const current = sel.value || sel.dataset.selected;
    $$("option[data-fn]", sel).forEach((o) => o.remove());
    names.forEach((n) => { const o = new Option("function: " + n, n); o.dataset.fn = "1"; sel.add(o); });
    if (Array.from(sel.options).some((o) => o.value === current)) sel.value = current;
  }

  // -- response format ------------------------------------------------------------------------
  function responseFormat() {
    const checked = $("[name=response_format]:checked");
    const editor = $("[data-schema-editor]");
    if (editor) editor.hidden = !checked || checked.value !== "json_schema";
  }
  document.addEventListener("change", (e) => {
    if (e.target.name === "response_format") responseFormat();
    if (e.target.matches("[data-model-picker]")) { capabilities(); scheduleCount(); }
    if (e.target.matches("[data-attach-input]")) { upload(Array.from(e.target.files), e.target.closest(".composer") ? $("#composer-input") : e.target.closest("[data-message]")); e.target.value = ""; }
  });

  // -- sliders mirror the number fields (the number is what is sent; blank = model default) ---------
  document.addEventListener("input", (e) => {
    const t = e.target;
    if (t.matches("[data-range-for]")) { const n = document.getElementById(t.dataset.rangeFor); n.value = t.value; }
    else if (t.matches(".param-num")) { const r = $("[data-range-for='" + t.id + "']"); if (r && t.value !== "") r.value = t.value; }
    if (t.matches("[data-token-source], [name=system], [name=content], [name=max_tokens]")) scheduleCount();
  });

  // -- what the model can do: disable the rest, and say why -------------------------------------
  const NEEDS = {
    logprobs: "does not return logprobs",
    tools: "does not support function calling",
    json_schema: "does not support JSON Schema output",
    vision: "does not accept images",
    sampling: "is a reasoning model: sampling is fixed",
  };
  function capabilities() {
    const picker = $("[data-model-picker]");
    if (!picker) return;
    const opt = picker.selectedOptions[0];
    const caps = opt && opt.dataset.capabilities ? opt.dataset.capabilities.split(" ").filter(Boolean) : [];
    const known = caps.length > 0;
    const model = opt ? opt.textContent.trim() : "";
    const note = $("#cap-note");
    if (note) {
      const ctx = opt && opt.dataset.contextLength ? Number(opt.dataset.contextLength).toLocaleString() + " token context" : "";
      const price = opt && opt.dataset.inputPrice ? "$" + opt.dataset.inputPrice + " / $" + opt.dataset.outputPrice + " per 1M" : "";
      note.innerHTML = "";
      note.append([ctx, price].filter(Boolean).join(" · "));
      if (!known) note.append((ctx || price ? " · " : "") + "capabilities unknown: the server decides");
    }
    $$("[data-needs]").forEach((el) => {
      const need = el.dataset.needs;
      if (!need) return;
      const ok = !known || (need === "sampling" ? !caps.includes("reasoning") : caps.includes(need));
      $$("input, select, textarea, button", el).forEach((i) => { i.disabled = !ok; });
      if (el.tagName === "LABEL") { const i = $("input", el); if (i) i.disabled = !ok; }
      el.toggleAttribute("data-unsupported", !ok);
      el.title = ok ? "" : model + " " + NEEDS[need];
      const reason = $(":scope > .reason", el) || (need === "json_schema" ? $("#json-schema-reason") : null);
      if (reason) reason.textContent = ok ? "" : model + " " + NEEDS[need] + ".";
    });
    const js = $("[name=response_format][value=json_schema]");
    if (js && js.disabled && js.checked) { $("[name=response_format][value=text]").checked = true; responseFormat(); }
    // A model that calls tools only when told to (the local engine): "auto" is not offered.
    const choice = $("[data-tool-choice]");
    const auto = choice && $("option[value=auto]", choice);
    if (auto) {
      const forced = caps.includes("tools_forced");
      auto.disabled = forced;
      auto.title = forced ? model + " calls a tool only when told to: choose required or a function" : "";
      if (forced && choice.value === "auto") choice.value = "required";
    }
  }

  // -- images: upload or paste -------------------------------------------------------------------
  function syncImages(holder) {
    const scope = holder.closest("[data-message]") || $("#composer-input");
    const ids = $$("[data-attachment]", holder).map((t) => t.dataset.attachment).join(",");
    $("[data-images-field]", scope).value = ids;
  }
  function upload(files, scope) {
    files.filter((f) => f.type.startsWith("image/") || true).forEach((file) => {
      const data = new FormData();
      data.append("image", file, file.name || "pasted.png");
      fetch("/chat/attach/", { method: "POST", body: data, headers: { "X-CSRFToken": csrf() }, credentials: "same-origin" })
        .then((r) => r.json().then((body) => ({ ok: r.ok, body })))
        .then(({ ok, body }) => {
          if (!ok) { showError(body.error || "The image could not be attached."); return; }
          const holder = $("[data-attachments]", scope);
          const span = document.createElement("span");
          span.className = "thumb"; span.dataset.attachment = body.id;
          span.innerHTML = '<img alt="attached image"><button type="button" data-remove-image aria-label="Remove image">✕</button>';
          span.querySelector("img").src = body.url;
          holder.appendChild(span);
          syncImages(holder);
          clearError();
          scheduleCount();
        })
        .catch(() => showError("The image could not be uploaded: check the connection and try again."));
    });
  }
  document.addEventListener("paste", (e) => {
    const t = e.target.closest("[data-paste-images]");
    if (!t || !e.clipboardData) return;
    const files = Array.from(e.clipboardData.files || []).filter((f) => f.type.startsWith("image/"));
    if (!files.length) return;
    e.preventDefault();
    upload(files, t.closest("[data-message]") || $("#composer-input"));
  });
  function showError(text) {
    const box = $("#chat-errors");
    box.innerHTML = "";
    const div = document.createElement("div");
    div.className = "alert alert-error";
    div.textContent = text;
    box.appendChild(div);
  }
  function clearError() { const box = $("#chat-errors"); if (box) box.innerHTML = ""; }

  // -- live token count and cost of the draft ------------------------------------------------------
  let countTimer = null;
  let countSeq = 0;  // answers can arrive out of order: only the latest request's counts
  function scheduleCount() { clearTimeout(countTimer); countTimer = setTimeout(count, 300); }
  function collectMessages() {
    const out = [];
    const sys = $("[name=system]");
    if (sys && sys.value.trim()) out.push({ role: "system", content: sys.value });
    $$("#messages [data-message]").forEach((m) => {
      const c = $("textarea[name=content]", m);
      const images = ($("[data-images-field]", m) || { value: "" }).value.split(",").filter(Boolean);
      const content = images.length ? [{ type: "text", text: c ? c.value : "" }, ...images.map(() => ({ type: "image_url" }))] : (c ? c.value : "");
      out.push({ role: $("[data-role-field]", m).value, content });
    });
    const draft = $("#draft");
    if (draft && draft.value.trim()) out.push({ role: "user", content: draft.value });
    return out;
  }
  function count() {
    const picker = $("[data-model-picker]");
    const out = $("#draft-count");
    if (!picker || !out) return;
    const opt = picker.selectedOptions[0];
    const maxTokens = ($("[name=max_tokens]") || {}).value || "";
    const seq = ++countSeq;
    fetch("/api/tokens/count", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
      body: JSON.stringify({ messages: collectMessages(), model_key: picker.value, max_tokens: maxTokens, context_length: opt ? opt.dataset.contextLength : "" }),
    }).then((r) => r.ok ? r.json() : null).then((data) => {
      if (!data || seq !== countSeq) return;
      let text = data.tokens.toLocaleString() + " tokens in";
      const inPrice = opt && parseFloat(opt.dataset.inputPrice);
      if (inPrice) {
        const cost = data.tokens * inPrice / 1e6;
        text += " · " + (cost < 0.0001 ? "< $0.0001" : "≈ $" + cost.toFixed(4));
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

  // -- start ---------------------------------------------------------------------------------------
  function init() {
    growAll(document);
    capabilities();
    responseFormat();
    scheduleCount();
    const s = scroller(); if (s) s.scrollTop = s.scrollHeight;
    const draft = $("#draft"); if (draft && !$("#messages").children.length) draft.focus();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init); else init();
})();

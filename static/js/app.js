// Playground: the little JavaScript htmx cannot do. No build step.
(function () {
  "use strict";

  // Light / dark / auto, remembered per browser.
  document.addEventListener("click", function (event) {
    const toggle = event.target.closest("[data-theme-toggle]");
    if (!toggle) return;
    const order = ["auto", "light", "dark"];
    const current = document.documentElement.dataset.theme || "auto";
    const next = order[(order.indexOf(current) + 1) % order.length];
    document.documentElement.dataset.theme = next;
    localStorage.setItem("theme", next);
    toggle.title = "Theme: " + next;
  });

  // Ctrl/Cmd+Enter runs: the page's [data-run-button], else the focused form's submit.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) return;
    const scope = event.target.closest("[data-run-scope]") || document;
    const button = scope.querySelector("[data-run-button]:not([disabled])") ||
      (event.target.form && event.target.form.querySelector("[type=submit]:not([disabled])"));
    if (button) {
      event.preventDefault();
      button.click();
    }
  });

  // Tabs (choices, View code): [data-tabs] holds [data-tab] buttons and [data-pane]s.
  document.addEventListener("click", function (event) {
    const tab = event.target.closest("[data-tab]");
    if (!tab) return;
    const tabs = tab.closest("[data-tabs]");
    tabs.querySelectorAll("[data-tab]").forEach(function (b) { b.classList.toggle("active", b === tab); });
    tabs.querySelectorAll(":scope > [data-pane]").forEach(function (p) { p.hidden = p.dataset.pane !== tab.dataset.tab; });
  });

  // The logprobs heat-map over an answer (chat, completions): shown and hidden in place.
  document.addEventListener("click", function (event) {
    const toggle = event.target.closest("[data-lp-toggle]");
    if (!toggle) return;
    const wrap = toggle.closest(".lp-wrap");
    const show = toggle.getAttribute("aria-expanded") !== "true";
    toggle.setAttribute("aria-expanded", show);
    wrap.querySelector("[data-lp-map]").hidden = !show;
    wrap.querySelector("[data-lp-legend]").hidden = !show;
  });

  // Copy buttons: <button data-copy="#id"> or on code blocks rendered as markdown.
  document.addEventListener("click", function (event) {
    const button = event.target.closest("[data-copy], .copy-btn");
    if (!button) return;
    let text;
    if (button.dataset.copy) {
      const target = document.querySelector(button.dataset.copy);
      text = target ? (target.value !== undefined ? target.value : target.innerText) : "";
    } else {
      const pre = button.closest("pre");
      const code = pre && pre.querySelector("code");
      text = code ? code.innerText : "";
    }
    navigator.clipboard.writeText(text).then(function () {
      const label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1200);
    });
  });

  // Server-rendered markdown gets copy buttons on its code blocks.
  function addCopyButtons(root) {
    root.querySelectorAll(".md pre").forEach(function (pre) {
      if (pre.querySelector(".copy-btn")) return;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "copy-btn";
      button.textContent = "Copy";
      pre.appendChild(button);
    });
  }
  document.addEventListener("DOMContentLoaded", function () { addCopyButtons(document); });
  document.addEventListener("htmx:afterSettle", function (event) { addCopyButtons(event.target); });
  document.addEventListener("htmx:oobAfterSwap", function (event) { addCopyButtons(event.target); });

  window.Playground = { addCopyButtons: addCopyButtons };
})();

// Runs history: a whole row opens its run; changing a filter applies it. No build step.
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    const row = event.target.closest("tr[data-href]");
    if (!row || event.target.closest("a, button, input, select")) return;
    if (window.getSelection && String(window.getSelection())) return;  // selecting text, not opening
    if (event.ctrlKey || event.metaKey) window.open(row.dataset.href, "_blank");
    else window.location.href = row.dataset.href;
  });
  document.addEventListener("change", function (event) {
    const form = event.target.closest("form[data-auto-submit]");
    if (form && event.target.matches("select")) form.requestSubmit();
  });
})();

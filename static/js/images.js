// Images page: model options on and off, a mask painted on a <canvas>, progress and Cancel.
// Vanilla JS, no build step. The painted mask becomes a real PNG file in the form's
// `mask` input, so the server checks it like an uploaded one.
(function () {
  "use strict";

  function init() {
    const form = document.querySelector("[data-image-form]");
    if (!form) return;
    setupOptions(form);
    setupPreview(form);
    setupMask(form);
    setupProgress(form);
  }

  // -- model options: sizes, quality, style, background, n ---------------------------------
  function setupOptions(form) {
    const picker = form.querySelector("[data-model-picker]");
    const blob = document.getElementById("image-options");
    if (!picker || !blob) return;
    let options = {};
    try { options = JSON.parse(blob.textContent || "{}"); } catch (e) { options = {}; }

    function fill(select, values, reason) {
      if (!select) return;
      const current = select.value;
      select.innerHTML = "";
      values.forEach(function (v) {
        const option = document.createElement("option");
        option.value = v; option.textContent = v;
        if (v === current) option.selected = true;
        select.appendChild(option);
      });
      select.disabled = values.length === 0;
      const help = form.querySelector('[data-reason-for="' + select.name + '"]');
      if (help) help.textContent = values.length ? "" : reason;
    }

    function apply() {
      const spec = options[picker.value];
      if (!spec) return;
      fill(form.querySelector('[data-option="sizes"]'), spec.sizes, "");
      fill(form.querySelector('[data-option="qualities"]'), spec.qualities, spec.reasons.quality);
      fill(form.querySelector('[data-option="styles"]'), spec.styles, spec.reasons.style);
      fill(form.querySelector('[data-option="backgrounds"]'), spec.backgrounds, spec.reasons.background);
      const n = form.querySelector('[data-option="n"]');
      if (n) {
        n.max = spec.max_n;
        if (Number(n.value) > spec.max_n) n.value = spec.max_n;
        n.readOnly = spec.max_n === 1;
        const help = form.querySelector('[data-reason-for="n"]');
        if (help) help.textContent = spec.max_n === 1 ? spec.reasons.n : "";
      }
      const note = form.querySelector("[data-model-note]");
      if (note) note.textContent = spec.note || "";
      const hint = form.querySelector("[data-image-hint]");
      if (hint) {
        const mb = Math.round(spec.max_upload_bytes / 1048576);
        hint.textContent = spec.square_png_only ? "This model takes square PNGs up to " + mb + " MB." : "PNG, JPEG or WebP, up to " + mb + " MB.";
      }
    }
    picker.addEventListener("change", apply);
    apply();
  }

  // -- variations: show the chosen image --------------------------------------------------
  function setupPreview(form) {
    if (form.querySelector("[data-mask-editor]")) return;  // the mask painter shows it
    const input = form.querySelector("[data-image-input]");
    if (!input) return;
    const preview = document.createElement("img");
    preview.className = "upload-preview";
    preview.alt = "The image to vary";
    preview.hidden = true;
    input.insertAdjacentElement("afterend", preview);
    if (input.dataset.sourceUrl) { preview.src = input.dataset.sourceUrl; preview.hidden = false; }
    input.addEventListener("change", function () {
      const file = input.files && input.files[0];
      if (!file) { preview.hidden = true; return; }
      preview.src = URL.createObjectURL(file);
      preview.hidden = false;
    });
  }

  // -- the mask painter ------------------------------------------------------------------
  function setupMask(form) {
    const editor = form.querySelector("[data-mask-editor]");
    if (!editor) return;
    const input = form.querySelector("[data-image-input]");
    const stage = editor.querySelector("[data-mask-stage]");
    const image = editor.querySelector("[data-mask-image]");
    const canvas = editor.querySelector("[data-mask-canvas]");
    const empty = editor.querySelector("[data-mask-empty]");
    const maskInput = editor.querySelector("[data-mask-input]");
    const status = editor.querySelector("[data-mask-status]");
    const sizeInput = editor.querySelector("[data-brush-size]");
    const ctx = canvas.getContext("2d");
    const defaultStatus = status ? status.textContent : "";
    let mode = "paint";
    let drawing = false;
    let last = null;
    let painted = false;

    function load(src) {
      image.onload = function () {
        canvas.width = image.naturalWidth;
        canvas.height = image.naturalHeight;
        ctx.clearRect(0, 0, canvas.width, canvas.height);
        stage.hidden = false;
        if (empty) empty.hidden = true;
        painted = false;
        clearMaskInput();
        editor.dataset.ready = "true";
      };
      image.src = src;
    }

    if (input) {
      input.addEventListener("change", function () {
        const file = input.files && input.files[0];
        if (file) load(URL.createObjectURL(file));
        const label = form.querySelector("[data-source-label]");
        if (label && file) label.hidden = true;
      });
    }
    if (editor.dataset.sourceUrl) load(editor.dataset.sourceUrl);

    function point(event) {
      const rect = canvas.getBoundingClientRect();
      return {
        x: (event.clientX - rect.left) * canvas.width / rect.width,
        y: (event.clientY - rect.top) * canvas.height / rect.height,
      };
    }

    function brush() {
      // The slider is in screen pixels; the canvas is at the image's resolution.
      const rect = canvas.getBoundingClientRect();
      return Number(sizeInput ? sizeInput.value : 40) * (rect.width ? canvas.width / rect.width : 1);
    }

    function stroke(from, to) {
      ctx.save();
      ctx.globalCompositeOperation = mode === "erase" ? "destination-out" : "source-over";
      ctx.strokeStyle = "#ff2d7a";
      ctx.fillStyle = "#ff2d7a";
      ctx.lineCap = "round";
      ctx.lineJoin = "round";
      ctx.lineWidth = brush();
      ctx.beginPath();
      ctx.moveTo(from.x, from.y);
      ctx.lineTo(to.x + 0.01, to.y);
      ctx.stroke();
      ctx.restore();
    }

    // The pointer is a circle of the brush's size (browsers cap cursors at 128 px).
    function updateCursor() {
      const size = Math.max(6, Math.min(120, Number(sizeInput ? sizeInput.value : 40)));
      const r = size / 2;
      const colour = mode === "erase" ? "#ffffff" : "#ff2d7a";
      const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="' + (size + 2) + '" height="' + (size + 2) + '">' +
        '<circle cx="' + (r + 1) + '" cy="' + (r + 1) + '" r="' + r + '" fill="none" stroke="#000" stroke-opacity=".55" stroke-width="2"/>' +
        '<circle cx="' + (r + 1) + '" cy="' + (r + 1) + '" r="' + r + '" fill="none" stroke="' + colour + '" stroke-width="1"/></svg>';
      canvas.style.cursor = 'url("data:image/svg+xml,' + encodeURIComponent(svg) + '") ' + Math.round(r + 1) + " " + Math.round(r + 1) + ", crosshair";
    }
    if (sizeInput) sizeInput.addEventListener("input", updateCursor);
    updateCursor();
    // [ and ] change the brush size while the pointer is over the image.
    document.addEventListener("keydown", function (event) {
      if (!sizeInput || stage.hidden || !canvas.matches(":hover") || (event.key !== "[" && event.key !== "]")) return;
      sizeInput.value = Number(sizeInput.value) + (event.key === "]" ? 8 : -8);
      updateCursor();
    });

    canvas.addEventListener("pointerdown", function (event) {
      if (!canvas.width) return;
      event.preventDefault();
      canvas.setPointerCapture(event.pointerId);
      drawing = true;
      last = point(event);
      stroke(last, last);
    });
    canvas.addEventListener("pointermove", function (event) {
      if (!drawing) return;
      const next = point(event);
      stroke(last, next);
      last = next;
    });
    function end() {
      if (!drawing) return;
      drawing = false;
      exportMask();
    }
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);

    editor.querySelectorAll("[data-mask-mode]").forEach(function (button) {
      button.addEventListener("click", function () {
        mode = button.dataset.maskMode;
        updateCursor();
        editor.querySelectorAll("[data-mask-mode]").forEach(function (b) {
          b.classList.toggle("active", b === button);
          b.setAttribute("aria-pressed", b === button ? "true" : "false");
        });
      });
    });
    const clear = editor.querySelector("[data-mask-clear]");
    if (clear) clear.addEventListener("click", function () {
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      painted = false;
      clearMaskInput();
    });

    // An uploaded mask replaces the painting.
    maskInput.addEventListener("change", function () {
      delete maskInput.dataset.painted;
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      painted = false;
      if (status) status.textContent = maskInput.files.length ? "Uploaded mask: " + maskInput.files[0].name : defaultStatus;
    });

    function clearMaskInput() {
      maskInput.value = "";
      delete maskInput.dataset.painted;
      editor.dataset.masked = "false";
      if (status) status.textContent = defaultStatus;
    }

    function hasPaint() {
      const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
      for (let i = 3; i < data.length; i += 4) if (data[i]) return true;
      return false;
    }

    // The mask OpenAI wants: opaque where the image stays, transparent where it is painted.
    function exportMask() {
      painted = hasPaint();
      if (!painted) { clearMaskInput(); return; }
      const out = document.createElement("canvas");
      out.width = canvas.width;
      out.height = canvas.height;
      const octx = out.getContext("2d");
      octx.fillStyle = "#000";
      octx.fillRect(0, 0, out.width, out.height);
      octx.globalCompositeOperation = "destination-out";
      octx.drawImage(canvas, 0, 0);
      out.toBlob(function (blob) {
        const file = new File([blob], "mask.png", { type: "image/png" });
        const transfer = new DataTransfer();
        transfer.items.add(file);
        maskInput.files = transfer.files;  // no change event for a scripted assignment
        maskInput.dataset.painted = "true";
        editor.dataset.masked = "true";
        if (status) status.textContent = "Painted mask, " + out.width + "×" + out.height + ": the pink area will be changed.";
      }, "image/png");
    }
  }

  // -- progress and Cancel ----------------------------------------------------------------
  // Each request carries a fresh token; Cancel posts it, the server stops that call and
  // answers the request itself with "Cancelled" (shown where errors go).
  function setupProgress(form) {
    const text = form.querySelector("[data-progress-text]");
    const tokenInput = form.querySelector("[data-cancel-token]");
    const cancel = form.querySelector("[data-image-cancel]");
    let timer = null;
    function newToken() {
      if (!tokenInput) return;
      tokenInput.value = (window.crypto && crypto.randomUUID) ? crypto.randomUUID() : String(Date.now()) + "-" + Math.random().toString(36).slice(2);
    }
    newToken();
    form.addEventListener("htmx:beforeRequest", function () {
      const started = Date.now();
      const n = (form.querySelector("[name=n]") || {}).value || 1;
      const verb = { generate: "Generating", edit: "Editing", variation: "Making" }[form.dataset.operation] || "Working";
      const what = form.dataset.operation === "variation" ? n + " variation" + (n == 1 ? "" : "s") : n + " image" + (n == 1 ? "" : "s");
      function tick() {
        if (text) text.textContent = verb + " " + what + "… " + Math.round((Date.now() - started) / 1000) + " s";
      }
      tick();
      timer = setInterval(tick, 1000);
      if (cancel) { cancel.disabled = false; cancel.textContent = "Cancel"; }
    });
    form.addEventListener("htmx:afterRequest", function () {
      clearInterval(timer);
      timer = null;
      newToken();
    });
    if (cancel) cancel.addEventListener("click", function () {
      if (!tokenInput) return;
      cancel.disabled = true;
      cancel.textContent = "Cancelling…";
      const body = new FormData();
      body.append("token", tokenInput.value);
      body.append("csrfmiddlewaretoken", form.querySelector("[name=csrfmiddlewaretoken]").value);
      fetch(tokenInput.dataset.cancelUrl, { method: "POST", body: body, credentials: "same-origin" });
    });
  }

  document.addEventListener("DOMContentLoaded", init);
})();

/* Speech pages: recording in the browser (MediaRecorder, level meter, timer), playing a
   transcript segment, the clip list's play buttons and small form helpers. No libraries. */
(function () {
  "use strict";

  function $(sel, root) { return (root || document).querySelector(sel); }

  function fmtTime(seconds) {
    var m = Math.floor(seconds / 60), s = Math.floor(seconds % 60);
    return m + ":" + (s < 10 ? "0" : "") + s;
  }

  // -- text to speech form ---------------------------------------------------------------
  document.addEventListener("input", function (e) {
    var t = e.target;
    if (t.matches && t.matches("[data-char-count]")) {
      var out = $(t.getAttribute("data-char-count"));
      if (out) out.textContent = t.value.length.toLocaleString();
    }
    if (t.matches && t.matches("[data-speed-output]")) {
      var o = $(t.getAttribute("data-speed-output"));
      if (o) o.textContent = Number(t.value).toFixed(2).replace(/0$/, "") + "×";
    }
    if (t.id === "stt-language") englishOnlyNote();
  });

  // One player for the clip list's ▶ buttons.
  var listPlayer = null, listButton = null;
  document.addEventListener("click", function (e) {
    var btn = e.target.closest && e.target.closest("[data-play-src]");
    if (!btn) return;
    if (listPlayer && listButton === btn && !listPlayer.paused) {
      listPlayer.pause(); return;
    }
    if (!listPlayer) {
      listPlayer = new Audio();
      listPlayer.addEventListener("ended", function () { if (listButton) listButton.classList.remove("playing"); });
      listPlayer.addEventListener("pause", function () { if (listButton) listButton.classList.remove("playing"); });
    }
    if (listButton) listButton.classList.remove("playing");
    listButton = btn;
    listPlayer.src = btn.getAttribute("data-play-src");
    listPlayer.play().then(function () { btn.classList.add("playing"); }).catch(function () {});
  });

  // -- transcript: click a segment to play that part --------------------------------------
  var stopAt = null;
  document.addEventListener("click", function (e) {
    var seg = e.target.closest && e.target.closest(".segment[data-start]");
    if (!seg) return;
    var player = $("#transcript-audio");
    if (!player) return;
    var start = parseFloat(seg.getAttribute("data-start")), end = parseFloat(seg.getAttribute("data-end"));
    stopAt = end > start ? end : null;
    player.currentTime = start;
    var p = player.play();
    if (p && p.catch) p.catch(function () {});
    markActive(seg);
  });

  function markActive(seg) {
    document.querySelectorAll(".segment.active").forEach(function (s) { if (s !== seg) s.classList.remove("active"); });
    if (seg) seg.classList.add("active");
  }

  function bindTranscriptPlayer() {
    var player = $("#transcript-audio");
    if (!player || player.dataset.bound) return;
    player.dataset.bound = "1";
    player.addEventListener("timeupdate", function () {
      if (stopAt !== null && player.currentTime >= stopAt) { player.pause(); stopAt = null; }
      var now = player.currentTime, found = null;
      document.querySelectorAll(".segment[data-start]").forEach(function (s) {
        if (now >= parseFloat(s.dataset.start) && now < parseFloat(s.dataset.end)) found = s;
      });
      if (found || !player.paused) markActive(found);
    });
    player.addEventListener("seeking", function () { if (stopAt !== null && player.currentTime > stopAt) stopAt = null; });
  }

  // -- speech to text form --------------------------------------------------------------------
  function englishOnlyNote() {
    var form = $("#stt-form");
    if (!form) return;
    var keys = (form.getAttribute("data-english-only") || "").split(" ").filter(Boolean);
    var model = $("#stt-model");
    var task = form.querySelector("input[name=task]:checked");
    var lang = ($("#stt-language") || {}).value || "";
    var englishOnly = model && keys.indexOf(model.value) >= 0;
    var warn = englishOnly && ((task && task.value === "translate") || (lang && !/^(en|english)$/i.test(lang.trim())));
    var note = $("#english-only-note");
    if (note) note.classList.toggle("hidden", !warn);
  }
  document.addEventListener("change", function (e) {
    if (e.target.id === "stt-model" || e.target.name === "task") englishOnlyNote();
    if (e.target.id === "stt-file") showFile(e.target);
  });

  function showFile(input) {
    var label = $("#stt-file-name");
    var f = input.files && input.files[0];
    if (!label) return;
    if (!f) { label.textContent = ""; return; }
    var limitMb = parseFloat(input.getAttribute("data-max-bytes") || "0");
    var mb = f.size / 1048576;
    label.textContent = f.name + " · " + (mb < 1 ? Math.max(1, Math.round(f.size / 1024)) + " KB" : mb.toFixed(1) + " MB");
    label.classList.toggle("error", limitMb > 0 && mb > limitMb);
    if (limitMb > 0 && mb > limitMb) label.textContent += " — over the " + limitMb + " MB limit";
    var preview = $("#stt-preview");
    if (preview) { preview.src = URL.createObjectURL(f); preview.classList.remove("hidden"); }
  }

  // Recording: MediaRecorder into a webm/ogg file placed in the form's file input.
  function setupRecorder() {
    var start = $("#rec-start"), stop = $("#rec-stop");
    if (!start || start.dataset.bound) return;
    start.dataset.bound = "1";
    var status = $("#rec-status"), timeEl = $("#rec-time"), level = $("#rec-level");
    var recorder = null, stream = null, chunks = [], started = 0, timer = null, raf = null, ctx = null;
    if (!navigator.mediaDevices || !window.MediaRecorder) {
      start.disabled = true;
      status.textContent = "Recording needs a browser with microphone access (HTTPS or localhost).";
      return;
    }
    start.addEventListener("click", function () {
      navigator.mediaDevices.getUserMedia({ audio: true }).then(function (s) {
        stream = s; chunks = [];
        var type = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/webm", "audio/mp4"].find(function (t) {
          return MediaRecorder.isTypeSupported(t);
        });
        recorder = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
        recorder.ondataavailable = function (e) { if (e.data && e.data.size) chunks.push(e.data); };
        recorder.onstop = finish;
        recorder.start(250);
        started = performance.now();
        timer = setInterval(function () { timeEl.textContent = fmtTime((performance.now() - started) / 1000); }, 200);
        meter(stream);
        start.classList.add("hidden"); stop.classList.remove("hidden");
        status.textContent = "Recording… speak now.";
        document.getElementById("recorder").classList.add("recording");
      }).catch(function (err) {
        status.textContent = "The microphone is not available: " + (err && err.message ? err.message : err) + ".";
      });
    });
    stop.addEventListener("click", function () { if (recorder && recorder.state !== "inactive") recorder.stop(); });

    function meter(s) {
      try {
        ctx = new (window.AudioContext || window.webkitAudioContext)();
        var analyser = ctx.createAnalyser();
        analyser.fftSize = 1024;
        ctx.createMediaStreamSource(s).connect(analyser);
        var data = new Uint8Array(analyser.fftSize);
        (function tick() {
          analyser.getByteTimeDomainData(data);
          var peak = 0;
          for (var i = 0; i < data.length; i++) peak = Math.max(peak, Math.abs(data[i] - 128));
          level.style.width = Math.min(100, Math.round(peak / 128 * 140)) + "%";
          raf = requestAnimationFrame(tick);
        })();
      } catch (e) { /* the level meter is a nicety; recording works without it */ }
    }

    function finish() {
      clearInterval(timer); cancelAnimationFrame(raf);
      if (ctx) ctx.close();
      stream.getTracks().forEach(function (t) { t.stop(); });
      level.style.width = "0";
      document.getElementById("recorder").classList.remove("recording");
      start.classList.remove("hidden"); stop.classList.add("hidden");
      var type = (recorder.mimeType || "audio/webm").split(";")[0];
      var ext = type.indexOf("ogg") >= 0 ? "ogg" : type.indexOf("mp4") >= 0 ? "m4a" : "webm";
      var seconds = (performance.now() - started) / 1000;
      var file = new File(chunks, "recording-" + new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-") + "." + ext, { type: type });
      var input = $("#stt-file");
      var dt = new DataTransfer();
      dt.items.add(file);
      input.files = dt.files;
      showFile(input);
      status.textContent = "Recorded " + fmtTime(seconds) + ". Press Transcribe, or record again.";
    }
  }

  // Drop a file on the upload box.
  ["dragenter", "dragover"].forEach(function (type) {
    document.addEventListener(type, function (e) {
      var drop = e.target.closest && e.target.closest("#stt-drop");
      if (!drop) return;
      e.preventDefault();
      drop.classList.add("dragging");
    });
  });
  document.addEventListener("dragleave", function (e) {
    var drop = e.target.closest && e.target.closest("#stt-drop");
    if (drop) drop.classList.remove("dragging");
  });
  document.addEventListener("drop", function (e) {
    var drop = e.target.closest && e.target.closest("#stt-drop");
    if (!drop) return;
    e.preventDefault();
    drop.classList.remove("dragging");
    var input = $("#stt-file");
    if (e.dataTransfer && e.dataTransfer.files.length && input) {
      input.files = e.dataTransfer.files;
      showFile(input);
    }
  });

  function init() {
    setupRecorder();
    bindTranscriptPlayer();
    englishOnlyNote();
  }
  document.addEventListener("DOMContentLoaded", init);
  document.addEventListener("htmx:load", init);
})();

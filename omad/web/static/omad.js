// omad's only script, served from the daemon itself (nothing comes from a CDN).
// Every page works without it; with it, pages stay live and uploads show progress.
(function () {
  "use strict";
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  // Live parts: re-fetch this page and swap in each [data-live] element whose markup changed,
  // so a playing video or a half-typed form is left alone.
  function live() {
    var every = parseFloat(document.body.dataset.refresh || "0");
    if (!(every > 0)) return;
    setTimeout(function tick() {
      fetch(location.href, {credentials: "same-origin", cache: "no-store", headers: {"X-Omad-Live": "1"}})
        .then(function (r) {
          if (r.redirected) { location.assign(r.url); throw new Error("moved"); }
          if (!r.ok) throw new Error(r.status);
          return r.text();
        })
        .then(function (text) {
          var doc = new DOMParser().parseFromString(text, "text/html");
          document.querySelectorAll("[data-live]").forEach(function (el) {
            var fresh = el.id && doc.getElementById(el.id);
            if (fresh && fresh.outerHTML !== el.outerHTML) el.replaceWith(document.importNode(fresh, true));
          });
          var next = parseFloat(doc.body.dataset.refresh || "0");
          document.body.dataset.refresh = String(next);
          if (next > 0) setTimeout(tick, next * 1000);
        })
        .catch(function () { setTimeout(tick, every * 2000); });
    }, every * 1000);
  }

  // The Create page: drag and drop onto the zone, then upload with a progress bar. Its words come
  // translated in data-* attributes of the page (the page's language), English if absent.
  function create() {
    var form = document.getElementById("create-form");
    if (!form || !window.FormData || !window.XMLHttpRequest) return;
    var input = document.getElementById("files");
    var zone = document.getElementById("dropzone");
    var bar = document.getElementById("upload-progress");
    var note = document.getElementById("upload-status");
    function show() {
      var names = Array.prototype.map.call(input.files, function (f) { return f.name; });
      var chosen = zone.querySelector(".chosen");
      chosen.textContent = names.length ? names.join(", ") : (chosen.dataset.none || "no files chosen");
    }
    input.addEventListener("change", show);
    ["dragenter", "dragover"].forEach(function (ev) {
      zone.addEventListener(ev, function (e) { e.preventDefault(); zone.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (ev) {
      zone.addEventListener(ev, function (e) { e.preventDefault(); zone.classList.remove("over"); });
    });
    zone.addEventListener("drop", function (e) {
      if (e.dataTransfer && e.dataTransfer.files.length) { input.files = e.dataTransfer.files; show(); }
    });
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.setRequestHeader("X-CSRF-Token", csrf);
      bar.hidden = false; bar.value = 0; note.textContent = note.dataset.uploading || "uploading...";
      xhr.upload.onprogress = function (p) { if (p.lengthComputable) bar.value = Math.round(100 * p.loaded / p.total); };
      xhr.onload = function () {
        var body = {};
        try { body = JSON.parse(xhr.responseText); } catch (err) { body = {error: xhr.responseText}; }
        if (xhr.status === 202 && body.page) { bar.value = 100; note.textContent = note.dataset.submitted || "submitted"; location.assign(body.page); }
        else { note.textContent = body.error || ((note.dataset.failed || "upload failed: HTTP") + " " + xhr.status); note.className = "error"; }
      };
      xhr.onerror = function () { note.textContent = note.dataset.cut || "the upload was cut off; try again"; note.className = "error"; };
      xhr.send(new FormData(form));
    });
  }

  document.addEventListener("DOMContentLoaded", function () { live(); create(); });
})();

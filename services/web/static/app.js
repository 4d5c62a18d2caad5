// chatvault web: what HTML alone cannot do. Every page works without it.
(function () {
  "use strict";
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";

  // The browser's UTC offset, for old exports without Unix dates.
  document.querySelectorAll("[data-utc-offset]").forEach(function (input) {
    input.value = String(-new Date().getTimezoneOffset());
  });

  // Forms that ask first.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
    });
  });

  // Copy buttons.
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var field = document.getElementById(button.getAttribute("data-copy"));
      if (!field) return;
      var done = function () { button.textContent = "Copied"; };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(done, function () { field.select(); });
      } else {
        field.select();
        try { if (document.execCommand("copy")) done(); } catch (ignored) { /* the text stays selected */ }
      }
    });
  });

  function bytes(n) {
    var units = ["bytes", "KB", "MB", "GB", "TB"], i = 0;
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
    return i === 0 ? n + " bytes" : n.toFixed(1) + " " + units[i];
  }

  function errorOf(xhr) {
    try { return JSON.parse(xhr.responseText).error || xhr.statusText; } catch (ignored) { return xhr.status + " " + xhr.statusText; }
  }

  // Sends form data with upload progress; calls back with the parsed JSON answer.
  function send(url, data, onProgress, onDone, onError) {
    var xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("X-CSRF-Token", csrf);
    var started = Date.now();
    xhr.upload.addEventListener("progress", function (event) {
      if (!event.lengthComputable) return;
      var seconds = Math.max((Date.now() - started) / 1000, 0.001);
      var rate = event.loaded / seconds;
      var eta = rate > 0 ? Math.round((event.total - event.loaded) / rate) : 0;
      onProgress(event.loaded, event.total, rate, eta);
    });
    xhr.addEventListener("load", function () {
      if (xhr.status >= 200 && xhr.status < 300) {
        try { onDone(JSON.parse(xhr.responseText)); } catch (error) { onError("unexpected answer"); }
      } else {
        onError(errorOf(xhr));
      }
    });
    xhr.addEventListener("error", function () { onError("the connection broke off"); });
    xhr.send(data);
  }

  // Import: one request with every file of the folder (or the .zip), with progress.
  var importForm = document.getElementById("import-form");
  if (importForm) {
    importForm.addEventListener("submit", function (event) {
      event.preventDefault();
      var status = document.getElementById("import-status");
      var bar = document.getElementById("import-progress");
      var button = document.getElementById("import-button");
      var data = new FormData();
      data.append("utc_offset_minutes", String(-new Date().getTimezoneOffset()));
      var count = 0;
      ["import-folder", "import-zip"].forEach(function (id) {
        var input = document.getElementById(id);
        Array.prototype.forEach.call(input.files, function (file) {
          data.append("files", file, file.webkitRelativePath || file.name);
          count++;
        });
      });
      if (count === 0) { status.textContent = "Choose the export folder or its .zip first."; return; }
      button.disabled = true;
      bar.hidden = false;
      status.textContent = "Uploading " + count + " file(s)…";
      send(importForm.action, data, function (loaded, total, rate, eta) {
        bar.value = Math.round(loaded * 100 / total);
        status.textContent = bytes(loaded) + " of " + bytes(total) + " · " + bytes(rate) + "/s · " + eta + " s left";
        if (loaded === total) status.textContent = "Uploaded; importing…";
      }, function (answer) {
        window.location.assign(answer.redirect);
      }, function (message) {
        button.disabled = false;
        bar.hidden = true;
        status.textContent = "The import failed: " + message;
        status.classList.add("error");
      });
    });
  }

  // Files: drag and drop, one request per file with its own progress bar.
  var uploadForm = document.getElementById("upload-form");
  if (uploadForm) {
    var list = document.getElementById("upload-list");
    var input = document.getElementById("upload-input");
    var zone = document.getElementById("dropzone");
    var uploadAll = function (files) {
      var remaining = files.length, lastDate = "";
      Array.prototype.forEach.call(files, function (file) {
        var row = document.createElement("li");
        var name = document.createElement("span");
        name.textContent = file.name + " (" + bytes(file.size) + ")";
        var bar = document.createElement("progress");
        bar.max = 100; bar.value = 0;
        row.appendChild(name); row.appendChild(bar);
        list.appendChild(row);
        var data = new FormData();
        data.append("files", file, file.name);
        send(uploadForm.action, data, function (loaded, total) {
          bar.value = Math.round(loaded * 100 / total);
        }, function (answer) {
          bar.value = 100;
          name.textContent = file.name + " — stored";
          lastDate = answer.files[0].upload_date;
          if (--remaining === 0) window.location.assign("/files?date=" + encodeURIComponent(lastDate));
        }, function (message) {
          name.textContent = file.name + " — failed: " + message;
          name.classList.add("error");
          remaining--;
        });
      });
    };
    uploadForm.addEventListener("submit", function (event) {
      event.preventDefault();
      if (input.files.length) uploadAll(input.files);
    });
    ["dragenter", "dragover"].forEach(function (type) {
      zone.addEventListener(type, function (event) { event.preventDefault(); zone.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (type) {
      zone.addEventListener(type, function () { zone.classList.remove("over"); });
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      if (event.dataTransfer && event.dataTransfer.files.length) uploadAll(event.dataTransfer.files);
    });
  }

  // A running backup: poll its state until it ends.
  var job = document.getElementById("job");
  if (job && job.getAttribute("data-done") === "0") {
    var poll = function () {
      fetch(window.location.pathname, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) { return response.json(); })
        .then(function (answer) {
          var progress = answer.job.progress;
          document.getElementById("job-progress").value = answer.percent;
          document.getElementById("job-phase").textContent = progress.phase + " " + progress.item +
            (progress.total > 0 ? " (" + progress.done + " of " + progress.total + " " + progress.unit + ")" : "");
          if (answer.job.outcome) {
            var outcome = document.getElementById("job-outcome");
            outcome.textContent = answer.job.outcome.Ok || answer.job.outcome.Err;
            if (answer.job.outcome.Err) outcome.classList.add("error");
            document.getElementById("job-progress").value = 100;
          } else {
            window.setTimeout(poll, 1000);
          }
        })
        .catch(function () { window.setTimeout(poll, 3000); });
    };
    window.setTimeout(poll, 1000);
  }
})();

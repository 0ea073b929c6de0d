// Live progress in the avatar admin (list and change pages): one WebSocket per avatar still
// processing (/ws/avatars/{id}/events/, authenticated by the admin session cookie), with a
// fallback to polling the API when the socket cannot be used. The markup it updates comes
// from avatars/admin.py (data-avatar-status, -progress, -note, -thumb, -preview).
(function () {
  "use strict";
  const LABELS = { processing: "Processing", inactive: "Ready", active: "Active", error: "Error" };
  const STATUSES = Object.keys(LABELS);

  function one(kind, id) {
    return document.querySelector("[data-avatar-" + kind + '="' + id + '"]');
  }

  function previewUrl(id) {
    return "/api/avatars/" + id + "/preview?t=" + Date.now();
  }

  function setStatusClass(el, prefix, status) {
    STATUSES.forEach(function (s) { el.classList.remove(prefix + s); });
    el.classList.add(prefix + status);
  }

  function render(state) {
    const id = state.id;
    const processing = state.status === "processing";
    const error = state.status === "error";
    const progress = state.progress || {};
    const bar = one("progress", id);
    if (bar) {
      const percent = processing ? (progress.percent || 0) : 100;
      setStatusClass(bar, "avatar-progress-", state.status);
      bar.querySelector(".avatar-progress-fill").style.width = percent + "%";
      bar.querySelector(".avatar-progress-text").textContent = processing
        ? (percent + "% " + (progress.stage || "")).trim()
        : error ? "Failed" : "100%";
      bar.title = state.error_message || progress.message || "";
      bar.dataset.processing = processing ? "1" : "0";
    }
    const note = one("note", id);
    if (note) {
      note.textContent = processing ? (progress.message || "") : error ? (state.error_message || "") : "";
      note.classList.toggle("avatar-progress-note-error", error);
    }
    const badge = one("status", id);
    if (badge) {
      badge.textContent = LABELS[state.status] || state.status;
      setStatusClass(badge, "avatar-status-", state.status);
    }
    if (state.has_preview && !processing) {
      const thumb = one("thumb", id);
      if (thumb && thumb.tagName !== "IMG") {
        const img = document.createElement("img");
        img.className = "avatar-thumb";
        img.dataset.avatarThumb = id;
        img.alt = "preview";
        img.src = previewUrl(id);
        thumb.replaceWith(img);
      } else if (thumb && thumb.dataset.stale === "1") {
        thumb.src = previewUrl(id);  // reprocessed: a fresh preview
        delete thumb.dataset.stale;
      }
      const preview = one("preview", id);
      if (preview && (preview.tagName !== "IMG" || preview.dataset.stale === "1")) {
        const img = document.createElement("img");
        img.className = "avatar-preview";
        img.dataset.avatarPreview = id;
        img.alt = "preview";
        img.src = previewUrl(id);
        preview.replaceWith(img);
      }
    }
  }

  function follow(id) {
    // A thumbnail shown now belongs to the run before this one.
    ["thumb", "preview"].forEach(function (kind) {
      const el = one(kind, id);
      if (el && el.tagName === "IMG") el.dataset.stale = "1";
    });
    let finished = false;
    let polling = false;
    function fallback() {
      if (!finished && !polling) {
        polling = true;
        poll(id);
      }
    }
    let socket;
    try {
      const scheme = location.protocol === "https:" ? "wss://" : "ws://";
      socket = new WebSocket(scheme + location.host + "/ws/avatars/" + id + "/events/");
    } catch (e) {
      return fallback();
    }
    socket.onmessage = function (event) {
      const data = JSON.parse(event.data);
      if (!data.avatar) return;
      render(data.avatar);
      if (data.avatar.status !== "processing") {
        finished = true;
        socket.close();
      }
    };
    // Refused, dropped or never opened: ask the API instead.
    socket.onclose = fallback;
  }

  // Fallback when WebSockets are blocked: ask the API every two seconds.
  function poll(id) {
    fetch("/api/avatars/" + id, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (a) {
        if (!a) return;
        render({ id: a.id, status: a.status, progress: a.progress, error_message: a.error_message,
                 has_preview: !!a.preview_image_path });
        if (a.status === "processing") setTimeout(function () { poll(id); }, 2000);
      })
      .catch(function () { setTimeout(function () { poll(id); }, 5000); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll('[data-avatar-progress][data-processing="1"]').forEach(function (el) {
      follow(el.dataset.avatarProgress);
    });
  });
})();

// Live state in the avatar admin (list and change pages): one WebSocket per avatar still
// processing or starting (/ws/avatars/{id}/events/, authenticated by the admin session
// cookie), with a fallback to polling the API when the socket cannot be used. The markup it
// updates comes from avatars/admin.py (data-avatar-status, -progress, -note, -thumb,
// -preview). A start ends with the event avatar.started or avatar.start_failed (the reason
// in error_message); `window.avatarAdminEvents.follow(id, onDone)` lets other scripts
// (admin_live.js) follow an avatar they just started.
(function () {
  "use strict";
  const LABELS = { processing: "Processing", inactive: "Ready", active: "Active", error: "Error" };
  const STATUSES = Object.keys(LABELS).concat(["starting"]);

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
      // Processing: the stage; otherwise the last failure (processing, start, or a worker gone).
      note.textContent = processing ? (progress.message || "") : (state.error_message || "");
      note.classList.toggle("avatar-progress-note-error", !processing && !!state.error_message);
    }
    const badge = one("status", id);
    if (badge) {
      const starting = !!state.starting && state.status === "inactive";
      badge.textContent = starting ? "Starting…" : (LABELS[state.status] || state.status);
      badge.dataset.starting = starting ? "1" : "0";
      setStatusClass(badge, "avatar-status-", starting ? "starting" : state.status);
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

  // Followed until neither processing nor starting; then onDone(state, event).
  function settled(state) {
    return state.status !== "processing" && !state.starting;
  }

  function follow(id, onDone) {
    // A thumbnail shown now belongs to the run before this one.
    const bar = one("progress", id);
    if (bar && bar.dataset.processing === "1") {
      ["thumb", "preview"].forEach(function (kind) {
        const el = one(kind, id);
        if (el && el.tagName === "IMG") el.dataset.stale = "1";
      });
    }
    let finished = false;
    let polling = false;
    function done(state, event) {
      finished = true;
      if (onDone) onDone(state, event);
    }
    function fallback() {
      if (!finished && !polling) {
        polling = true;
        poll(id, done);
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
      if (settled(data.avatar)) {
        socket.onclose = null;
        socket.close();
        done(data.avatar, data.event);
      }
    };
    // Refused, dropped or never opened: ask the API instead.
    socket.onclose = fallback;
  }

  // Fallback when WebSockets are blocked: ask the API every two seconds (a start job's state
  // from GET /api/avatars/{id}/start: 202 while it runs).
  function poll(id, done) {
    const json = { credentials: "same-origin", headers: { Accept: "application/json" } };
    fetch("/api/avatars/" + id + "/start", json)
      .then(function (r) { return r.status === 202; })
      .catch(function () { return false; })
      .then(function (starting) {
        return fetch("/api/avatars/" + id, json)
          .then(function (r) { return r.ok ? r.json() : null; })
          .then(function (a) {
            if (!a) return;
            const state = { id: a.id, status: a.status, progress: a.progress, error_message: a.error_message,
                            has_preview: !!a.preview_image_path, starting: starting && a.status === "inactive" };
            render(state);
            if (settled(state)) done(state, "poll");
            else setTimeout(function () { poll(id, done); }, 2000);
          });
      })
      .catch(function () { setTimeout(function () { poll(id, done); }, 5000); });
  }

  window.avatarAdminEvents = { follow: follow, render: render };

  document.addEventListener("DOMContentLoaded", function () {
    const followed = new Set();
    document.querySelectorAll('[data-avatar-progress][data-processing="1"], [data-avatar-status][data-starting="1"]')
      .forEach(function (el) {
        const id = el.dataset.avatarProgress || el.dataset.avatarStatus;
        if (followed.has(id)) return;
        followed.add(id);
        // On the change page the Start/Stop buttons depend on the outcome: show them anew.
        const live = document.querySelector('[data-avatar-live][data-avatar-id="' + id + '"]');
        follow(id, live ? function () { window.location.reload(); } : null);
      });
  });
})();

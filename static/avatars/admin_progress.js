// Live progress in the avatar admin: one WebSocket per avatar still processing
// (/ws/avatars/{id}/events/, authenticated by the admin session cookie).
(function () {
  "use strict";
  const COLOURS = { processing: "#b26a00", inactive: "#2e7d32", active: "#1565c0", error: "#c62828" };
  const LABELS = { processing: "Processing", inactive: "Ready", active: "Active", error: "Error" };

  function render(state) {
    const id = state.id;
    const bar = document.querySelector('[data-avatar-progress="' + id + '"]');
    if (bar) {
      const processing = state.status === "processing";
      const percent = processing ? state.progress.percent : 100;
      bar.querySelector(".avatar-progress-fill").style.width = percent + "%";
      bar.querySelector(".avatar-progress-text").textContent = processing
        ? percent + "% " + state.progress.stage
        : state.status === "error" ? state.error_message.slice(0, 60) : "100%";
      bar.title = state.error_message || state.progress.message || "";
      bar.dataset.processing = processing ? "1" : "0";
    }
    const badge = document.querySelector('[data-avatar-status="' + id + '"]');
    if (badge) {
      badge.textContent = LABELS[state.status] || state.status;
      badge.style.background = COLOURS[state.status] || "#555";
    }
    if (state.has_preview) {
      const thumb = document.querySelector('[data-avatar-thumb="' + id + '"]');
      if (thumb && thumb.tagName !== "IMG") {
        const img = document.createElement("img");
        img.className = "avatar-thumb";
        img.dataset.avatarThumb = id;
        img.alt = "preview";
        img.src = "/api/avatars/" + id + "/preview?t=" + Date.now();
        thumb.replaceWith(img);
      }
    }
  }

  function follow(id) {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    let socket;
    try {
      socket = new WebSocket(scheme + location.host + "/ws/avatars/" + id + "/events/");
    } catch (e) {
      return poll(id);
    }
    socket.onmessage = function (event) {
      const data = JSON.parse(event.data);
      if (data.avatar) {
        render(data.avatar);
        if (data.avatar.status !== "processing") socket.close();
      }
    };
    socket.onerror = function () { poll(id); };
  }

  // Fallback when WebSockets are blocked: ask the API every two seconds.
  function poll(id) {
    fetch("/api/avatars/" + id, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (a) {
        if (!a) return;
        render({ id: a.id, status: a.status, progress: a.progress, error_message: a.error_message,
                 has_preview: !!a.preview_image_path });
        if (a.status === "processing") setTimeout(function () { poll(id); }, 2000);
      });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll('[data-avatar-progress][data-processing="1"]').forEach(function (el) {
      follow(el.dataset.avatarProgress);
    });
  });
})();

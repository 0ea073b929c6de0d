// Start / Stop buttons of the avatar change page: POST to the API with the admin's session.
// Start answers at once (202, a start job); the button then follows the avatar's events
// channel (admin_progress.js) until avatar.started or avatar.start_failed, and the page is
// shown anew with the outcome (Active with Stop/Talk, or the reason it could not start).
(function () {
  "use strict";
  function csrfToken() {
    const match = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }
  document.addEventListener("click", async function (event) {
    const button = event.target.closest("button[data-avatar-live]");
    if (!button) return;
    event.preventDefault();
    const starting = button.dataset.avatarLive === "start";
    button.disabled = true;
    button.textContent = starting ? "Starting…" : "Stopping…";
    let response = null;
    let body = {};
    try {
      response = await fetch(button.dataset.url, {
        method: "POST", credentials: "same-origin",
        headers: {"X-CSRFToken": csrfToken(), "Content-Type": "application/json"}, body: "{}",
      });
      body = await response.json().catch(() => ({}));
    } catch (e) {
      body = {detail: String(e)};
    }
    if (response && response.status === 202 && window.avatarAdminEvents) {
      if (body.avatar) {
        window.avatarAdminEvents.render(Object.assign({}, body.avatar, {
          starting: true, has_preview: !!body.avatar.preview_image_path}));
      }
      window.avatarAdminEvents.follow(button.dataset.avatarId, function () { window.location.reload(); });
      return;
    }
    if (!response || !response.ok) alert(body.detail || ("Failed: HTTP " + (response ? response.status : "?")));
    window.location.reload();
  });
})();

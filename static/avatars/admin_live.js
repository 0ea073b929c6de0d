// Start / Stop buttons of the avatar list: POST to the API with the admin's session.
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
    button.disabled = true;
    button.textContent = button.dataset.avatarLive === "start" ? "Starting…" : "Stopping…";
    try {
      const response = await fetch(button.dataset.url, {
        method: "POST", credentials: "same-origin",
        headers: {"X-CSRFToken": csrfToken(), "Content-Type": "application/json"}, body: "{}",
      });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) alert(body.detail || ("Failed: HTTP " + response.status));
    } finally {
      window.location.reload();
    }
  });
})();

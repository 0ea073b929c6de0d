// Avatar change page: voice preview (POST /api/tts/preview) and talking clips
// (POST /api/avatars/{id}/render, listed from /api/avatars/{id}/renders with players).
// Requests use the admin session; Django's CSRF token goes in the header.
(function () {
  "use strict";

  function csrfToken() {
    const match = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    if (match) return decodeURIComponent(match[1]);
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(body),
    });
  }

  async function errorText(response) {
    try {
      const body = await response.json();
      return body.detail || response.statusText;
    } catch (e) {
      return response.statusText;
    }
  }

  function setStatus(root, which, text, isError) {
    const el = root.querySelector('[data-status="' + which + '"]');
    el.textContent = text;
    el.classList.toggle("errornote-inline", !!isError);
  }

  async function previewVoice(root) {
    const text = root.querySelector("#voice-preview-text").value;
    const body = { text: text, tts_model: root.dataset.ttsModel, avatar_id: Number(root.dataset.avatarTools) };
    if (root.dataset.timbre) body.voice = root.dataset.timbre;
    setStatus(root, "voice", "Synthesising…");
    // The request answers at once with a job; its result URL gives the WAV once a tts
    // worker has made it (202 until then).
    const response = await post("/api/tts/preview", body);
    if (!response.ok) return setStatus(root, "voice", await errorText(response), true);
    const job = await response.json();
    let result;
    for (let waited = 0; ; waited += 250) {
      result = await fetch(job.result_url, { credentials: "same-origin" });
      if (result.status !== 202) break;
      if (waited > 60000) return setStatus(root, "voice", "No TTS worker answered: is one running?", true);
      await new Promise(function (resolve) { setTimeout(resolve, 250); });
    }
    if (!result.ok) return setStatus(root, "voice", await errorText(result), true);
    const player = root.querySelector('[data-player="voice"]');
    player.src = URL.createObjectURL(await result.blob());
    player.hidden = false;
    setStatus(root, "voice", "");
    player.play().catch(function () {});
  }

  async function render(root) {
    const text = root.querySelector("#render-text").value;
    setStatus(root, "render", "Queued…");
    const response = await post("/api/avatars/" + root.dataset.avatarTools + "/render", { text: text });
    if (!response.ok) return setStatus(root, "render", await errorText(response), true);
    setStatus(root, "render", "");
    refreshRenders(root);
  }

  function renderRow(item) {
    const row = document.createElement("div");
    row.className = "avatar-render";
    row.dataset.renderId = item.id;
    row.dataset.renderStatus = item.status;
    const label = document.createElement("div");
    label.className = "avatar-render-label";
    label.textContent = "#" + item.id + " · " + item.status +
      (item.status === "done" ? " · " + item.duration_seconds.toFixed(1) + " s" : "") +
      (item.status === "processing" || item.status === "queued" ? " · " + item.progress_percent + "%" : "") +
      (item.error_message ? " · " + item.error_message : "") + " — " + (item.text || "uploaded audio").slice(0, 80);
    row.appendChild(label);
    if (item.status === "done") {
      const video = document.createElement("video");
      video.controls = true;
      video.preload = "metadata";
      video.src = item.download_url;
      row.appendChild(video);
    }
    return row;
  }

  async function refreshRenders(root) {
    const response = await fetch("/api/avatars/" + root.dataset.avatarTools + "/renders", { credentials: "same-origin" });
    if (!response.ok) return;
    const items = await response.json();
    const list = root.querySelector("[data-renders]");
    list.replaceChildren.apply(list, items.map(renderRow));
    if (items.some(function (i) { return i.status === "queued" || i.status === "processing"; })) {
      setTimeout(function () { refreshRenders(root); }, 1000);
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    const root = document.querySelector("[data-avatar-tools]");
    if (!root) return;
    root.querySelector('[data-action="preview-voice"]').addEventListener("click", function () { previewVoice(root); });
    root.querySelector('[data-action="render"]').addEventListener("click", function () { render(root); });
    refreshRenders(root);
  });
})();

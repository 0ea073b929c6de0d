// Talk page: a conversation with one avatar over WebRTC. Signaling over WS
// /ws/avatars/{id}/session/ (the admin's session cookie authenticates it); media comes from
// the lip-sync worker, which also hears the page's microphone (sent on the same peer
// connection once the student turns it on) and answers typed questions (`ask`).
// A connection lost by accident (the web server restarting, the network, Redis) is opened
// again with a growing delay (1 s, 2 s, 4 s ... 30 s, with jitter), and a new session with it;
// the server's refusals (not started, signed out, not found, misuse) are not retried.
(function () {
  "use strict";
  const cfg = JSON.parse(document.getElementById("talk-config").textContent);
  const $ = (id) => document.getElementById(id);
  const video = $("talk-video"), subtitles = $("talk-subtitles"), stateEl = $("talk-state"), errorEl = $("talk-error");
  let ws = null, pc = null, sessionId = null, currentUtterance = null;
  // The microphone: its track (kept across sessions), whether the student wants it on, and
  // whether push-to-talk holds it off until the button is held.
  let micTrack = null, micSender = null, micWanted = false, pushToTalk = false, holding = false;
  let studentLine = null, answerLine = null;
  // Reconnection: how many tries since the last session that worked, the pending try.
  const RETRY_FIRST_MS = 1000, RETRY_MAX_MS = 30000;
  // After a `draining` notice, the time another worker needs to warm the avatar.
  const DRAIN_HANDOVER_MS = 3000;
  let retries = 0, retryTimer = null, leaving = false;
  // The server's last word before a connection was lost (e.g. it lost Redis): kept on screen
  // while reconnecting, rather than a vaguer "connection lost".
  let lastServerError = "";
  // Close codes after which trying again cannot help (see avatars/consumers.py).
  const FINAL_CLOSES = {
    4401: "Your sign-in ended: sign in again, then reload this page.",
    4404: "This avatar does not exist (any more).",
    4409: "",  // not started: the Start button says what to do
    4429: "Too many messages were sent; reload the page to connect again.",
    1009: "A message was too large; reload the page to connect again.",
  };
  const CLOSE_RESTART = 4000;  // ours: the media connection failed, open a new session

  function setState(state) { stateEl.textContent = state; stateEl.dataset.state = state; }
  function showError(text) { errorEl.textContent = text; errorEl.hidden = !text; }
  function send(message) {
    if (!ws || ws.readyState !== WebSocket.OPEN) { showError("Not connected."); return false; }
    ws.send(JSON.stringify(message)); return true;
  }
  function csrfToken() {
    const match = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  // The worker answers once with all its candidates, so the offer waits for ours too.
  function gatheringDone(peer) {
    if (peer.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => { if (peer.iceGatheringState === "complete") { peer.removeEventListener("icegatheringstatechange", check); resolve(); } };
      peer.addEventListener("icegatheringstatechange", check);
      setTimeout(resolve, 3000);
    });
  }

  // TURN credentials expire (TURN_TTL): a session opened later, a reconnection after a long
  // lesson, asks for fresh ones first. Failing that, the old ones are tried anyway.
  async function freshIceServers() {
    if (!cfg.iceExpiresAt || !cfg.iceServersUrl || Date.parse(cfg.iceExpiresAt) - Date.now() > 60000) return;
    try {
      const response = await fetch(cfg.iceServersUrl, {credentials: "same-origin"});
      if (!response.ok) return;
      const body = await response.json();
      cfg.iceServers = body.ice_servers; cfg.iceExpiresAt = body.expires_at;
    } catch (e) { /* keep the old ones */ }
  }

  async function offer() {
    await freshIceServers();
    // iceTransportPolicy "relay" (WEBRTC_ICE_TRANSPORT_POLICY): TURN relay candidates only.
    pc = new RTCPeerConnection({iceServers: cfg.iceServers || [], iceTransportPolicy: cfg.iceTransportPolicy || "all"});
    pc.addTransceiver("video", {direction: "recvonly"});
    // sendrecv from the start, so that turning the microphone on needs no new offer.
    micSender = pc.addTransceiver("audio", {direction: "sendrecv"}).sender;
    attachMicrophone();
    const stream = new MediaStream();
    pc.addEventListener("track", (event) => { stream.addTrack(event.track); video.srcObject = stream; });
    const peer = pc;
    peer.addEventListener("connectionstatechange", () => {
      if (peer !== pc) return;  // an earlier session's peer, closing
      setState(peer.connectionState);
      if (peer.connectionState === "connected") { retries = 0; lastServerError = ""; showError(""); }
      // The media path is gone while signaling still works (the worker restarted, the
      // network changed): start over with a new session.
      if (peer.connectionState === "failed" && ws && ws.readyState === WebSocket.OPEN) ws.close(CLOSE_RESTART);
    });
    await pc.setLocalDescription(await pc.createOffer());
    await gatheringDone(pc);
    send({type: "offer", sdp: pc.localDescription.sdp});
  }

  // --- the microphone -------------------------------------------------------------------
  function attachMicrophone() {
    if (micSender && micTrack && micSender.track !== micTrack) {
      micSender.replaceTrack(micTrack).catch((e) => showError(String(e)));
    }
    updateMicrophone();
  }
  // Sound goes out only while wanted (and, with push-to-talk, while the button is held);
  // a disabled track sends silence, which the worker hears as the end of a question.
  function updateMicrophone() {
    if (micTrack) micTrack.enabled = micWanted && (!pushToTalk || holding);
    const button = $("talk-mic");
    button.textContent = micWanted ? "Microphone on" : "Microphone off";
    button.setAttribute("aria-pressed", String(micWanted));
    $("talk-hold").hidden = !(micWanted && pushToTalk);
  }
  async function toggleMicrophone() {
    if (!micWanted && !micTrack) {
      try {
        // The browser's echo cancellation keeps the avatar's own voice from interrupting it.
        const stream = await navigator.mediaDevices.getUserMedia(
          {audio: {echoCancellation: true, noiseSuppression: true, autoGainControl: true}});
        micTrack = stream.getAudioTracks()[0];
      } catch (e) {
        showError(`The microphone is not available (${e.name || e}); you can still type questions.`);
        return;
      }
    }
    micWanted = !micWanted;
    video.muted = false; video.play().catch(() => {});
    attachMicrophone();
  }
  function hold(on) { holding = on; updateMicrophone(); }

  // --- the conversation as text ---------------------------------------------------------
  function line(role) {
    const item = document.createElement("li");
    item.className = role;
    $("talk-transcript").appendChild(item);
    item.scrollIntoView({block: "nearest"});
    return item;
  }
  function onTranscript(event) {
    if (!studentLine) studentLine = line("student");
    studentLine.textContent = event.text;
    studentLine.dataset.final = event.final ? "1" : "0";
    if (event.final) { studentLine = null; answerLine = null; }
  }
  function onAnswer(event) {
    if (!answerLine) answerLine = line("avatar");
    answerLine.textContent = event.text;
  }
  function onTurn(event) {
    const l = event.latencies || {};
    if (answerLine && l.first_frame_ms != null) answerLine.title = `answered in ${l.first_frame_ms} ms (speech recognition ${l.asr_ms ?? "-"} ms, first words ${l.first_token_ms ?? "-"} ms, first audio ${l.first_audio_ms ?? "-"} ms)`;
  }

  function onEvent(event) {
    switch (event.type) {
      case "state":
        if (event.state === "ready") { setState("negotiating"); offer().catch((e) => showError(String(e))); }
        else if (event.state === "closed") { setState("closed"); sessionId = null; }
        else setState(event.state);
        break;
      case "answer":
        sessionId = event.session_id;
        // Fresh TURN credentials: the next session (a reconnection) uses these, not the page's old ones.
        if (Array.isArray(event.ice_servers)) { cfg.iceServers = event.ice_servers; cfg.iceExpiresAt = event.expires_at; }
        pc.setRemoteDescription({type: "answer", sdp: event.sdp}).catch((e) => showError(String(e)));
        break;
      case "speaking_started":
        currentUtterance = event.utterance; subtitles.textContent = ""; subtitles.dataset.speaking = "1";
        break;
      case "word":
        if (event.utterance !== currentUtterance) { currentUtterance = event.utterance; subtitles.textContent = ""; }
        // Keep the last dozen words on screen, like captions.
        subtitles.textContent = (subtitles.textContent + " " + event.text).trim().split(/\s+/).slice(-12).join(" ");
        break;
      case "speaking_ended":
        subtitles.dataset.speaking = "0";
        break;
      case "listening":
        $("talk-hearing").dataset.speaking = event.speaking ? "1" : "0";
        $("talk-hearing").textContent = event.speaking ? "Listening..." : "";
        break;
      case "user_transcript": onTranscript(event); break;
      case "answer_text": onAnswer(event); break;
      case "turn": onTurn(event); break;
      case "draining":
        // Its worker is shutting down. When the avatar is being warmed on another one, open a
        // new session there in a moment (the reconnection finds it); else say to start again.
        showError(event.detail || "This server is shutting down.");
        if (event.moving) setTimeout(() => { if (ws) ws.close(); }, DRAIN_HANDOVER_MS);
        break;
      case "error":
        // A failed answer or transcript is about that turn, not the connection.
        if (event.reason !== "responder" && event.reason !== "asr") lastServerError = event.detail || "";
        showError(event.detail || "Error");
        break;
    }
  }

  function connect() {
    clearTimeout(retryTimer); retryTimer = null;
    if (ws && ws.readyState <= WebSocket.OPEN) return;
    if (!retries) showError("");
    setState(retries ? "reconnecting" : "connecting");
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}${cfg.wsPath}`);
    ws = socket;
    socket.addEventListener("message", (message) => { if (socket === ws) onEvent(JSON.parse(message.data)); });
    socket.addEventListener("close", (event) => { if (socket === ws) onClose(event); });
  }

  function onClose(event) {
    ws = null;
    if (pc) pc.close();  // the worker ends this session when its peer goes
    pc = null; sessionId = null;
    if (leaving) return;
    if (event.code in FINAL_CLOSES) {
      if (event.code === 4409) { $("talk-start").hidden = cfg.canStart === false; setState("not started"); }
      else { setState("disconnected"); showError(FINAL_CLOSES[event.code]); }
      retries = 0;
      return;
    }
    reconnectLater();
  }

  function reconnectLater() {
    const delay = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** retries) * (0.5 + Math.random() / 2);
    retries += 1;
    setState("reconnecting");
    const next = `${Math.ceil(delay / 1000)} s (try ${retries})`;
    showError(lastServerError ? `${lastServerError} (next try in ${next})` : `Connection lost; reconnecting in ${next}...`);
    clearTimeout(retryTimer);
    retryTimer = setTimeout(connect, delay);
  }

  $("talk-start").addEventListener("click", async () => {
    $("talk-start").disabled = true;
    setState("starting");
    try {
      const response = await fetch(cfg.startUrl, {method: "POST", credentials: "same-origin",
        headers: {"Content-Type": "application/json", "X-CSRFToken": csrfToken()}, body: "{}"});
      let body = await response.json().catch(() => ({}));
      let status = response.status;
      // 202: a start job; ask how it stands until the worker has reported.
      while (status === 202 && body.job_id) {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        const poll = await fetch(`${cfg.startUrl}?job_id=${encodeURIComponent(body.job_id)}`,
          {credentials: "same-origin", headers: {Accept: "application/json"}});
        status = poll.status;
        body = await poll.json().catch(() => ({}));
        if (status === 200 && body.status === "failed") status = 409;
      }
      if (status === 200) { $("talk-start").hidden = true; retries = 0; connect(); }
      else showError(body.detail || body.message || `Start failed (HTTP ${status})`);
    } finally { $("talk-start").disabled = false; }
  });
  $("talk-connect").addEventListener("click", () => { retries = 0; connect(); });
  $("talk-unmute").addEventListener("click", () => { video.muted = false; video.play().catch(() => {}); });
  function submitText(message) {
    const text = $("talk-text").value.trim();
    if (!text) return;
    video.muted = false;  // the click is the user gesture browsers want before sound
    video.play().catch(() => {});
    if (send({...message, text})) {
      $("talk-text").value = "";
      if (message.type === "ask") { studentLine = null; onTranscript({text, final: true}); }
    }
  }
  // Enter / "Ask": a question the avatar answers; "Speak as written": the text said as it is.
  $("talk-form").addEventListener("submit", (event) => { event.preventDefault(); submitText({type: "ask"}); });
  $("talk-speak").addEventListener("click", () => submitText({type: "say", interrupt: $("talk-interrupt-first").checked}));
  $("talk-mic").addEventListener("click", () => toggleMicrophone());
  $("talk-ptt").addEventListener("change", (event) => { pushToTalk = event.target.checked; holding = false; updateMicrophone(); });
  for (const [name, on] of [["pointerdown", true], ["pointerup", false], ["pointerleave", false], ["pointercancel", false]]) {
    $("talk-hold").addEventListener(name, () => hold(on));
  }
  $("talk-interrupt").addEventListener("click", () => send({type: "interrupt"}));
  window.addEventListener("beforeunload", () => { leaving = true; if (sessionId) send({type: "bye"}); });

  if (cfg.status === "active") connect(); else { $("talk-start").hidden = cfg.canStart === false; setState("not started"); }
})();

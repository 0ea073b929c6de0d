// Watch page of a classroom broadcast: one avatar speaking to a whole class. Signaling over
// WS /ws/broadcasts/{id}/?token=…; the worker sends the host session's picture and sound
// (H.264 + Opus, encoded once for every viewer) and its words as subtitles. Viewers only
// watch and listen. The page reconnects after an accidental loss, never after `ended` or a
// refused link.
(function () {
  "use strict";
  const cfg = JSON.parse(document.getElementById("watch-config").textContent);
  const $ = (id) => document.getElementById(id);
  const video = $("watch-video"), subtitles = $("watch-subtitles"), stateEl = $("watch-state"), errorEl = $("watch-error");
  let ws = null, pc = null, currentUtterance = null, retries = 0, finished = false;
  const FINAL_CLOSES = {
    4401: "This viewer link is not valid; ask the host for the class link.",
    4404: "This broadcast does not exist or has ended.",
    4429: "Too many messages were sent; reload the page to watch again.",
  };

  function setState(state) { stateEl.textContent = state; stateEl.dataset.state = state; }
  function showError(text) { errorEl.textContent = text; errorEl.hidden = !text; }
  function send(message) { if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message)); }

  function gatheringDone(peer) {
    if (peer.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => { if (peer.iceGatheringState === "complete") resolve(); };
      peer.addEventListener("icegatheringstatechange", check);
      setTimeout(resolve, 3000);
    });
  }

  async function offer() {
    // iceTransportPolicy "relay" (WEBRTC_ICE_TRANSPORT_POLICY): TURN relay candidates only.
    pc = new RTCPeerConnection({iceServers: cfg.iceServers || [], iceTransportPolicy: cfg.iceTransportPolicy || "all"});
    pc.addTransceiver("video", {direction: "recvonly"});
    pc.addTransceiver("audio", {direction: "recvonly"});
    const stream = new MediaStream();
    pc.addEventListener("track", (event) => { stream.addTrack(event.track); video.srcObject = stream; });
    const peer = pc;
    peer.addEventListener("connectionstatechange", () => {
      if (peer !== pc) return;
      setState(peer.connectionState);
      if (peer.connectionState === "connected") { retries = 0; showError(""); }
      if (peer.connectionState === "failed" && ws) ws.close();
    });
    await pc.setLocalDescription(await pc.createOffer());
    await gatheringDone(pc);
    send({type: "offer", sdp: pc.localDescription.sdp});
  }

  function onEvent(event) {
    switch (event.type) {
      case "state":
        if (event.state === "ready") { setState("negotiating"); offer().catch((e) => showError(String(e))); }
        else setState(event.state);
        break;
      case "answer":
        if (event.viewers != null) $("watch-viewers").textContent = event.viewers;
        pc.setRemoteDescription({type: "answer", sdp: event.sdp}).catch((e) => showError(String(e)));
        break;
      case "viewers": $("watch-viewers").textContent = event.count; break;
      case "speaking_started":
        currentUtterance = event.utterance; subtitles.textContent = ""; subtitles.dataset.speaking = "1";
        break;
      case "word":
        if (event.utterance !== currentUtterance) { currentUtterance = event.utterance; subtitles.textContent = ""; }
        subtitles.textContent = (subtitles.textContent + " " + event.text).trim().split(/\s+/).slice(-12).join(" ");
        break;
      case "speaking_ended": subtitles.dataset.speaking = "0"; break;
      case "ended":
        finished = true; setState("ended");
        showError(`The broadcast has ended${event.reason ? ": " + event.reason : "."}`);
        break;
      case "error": showError(event.detail || "Error"); break;
    }
  }

  function connect() {
    setState(retries ? "reconnecting" : "connecting");
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}${cfg.wsPath}`);
    ws = socket;
    socket.addEventListener("message", (message) => { if (socket === ws) onEvent(JSON.parse(message.data)); });
    socket.addEventListener("close", (event) => {
      if (socket !== ws) return;
      ws = null;
      if (pc) pc.close();
      pc = null;
      if (finished) return;
      if (event.code in FINAL_CLOSES) { setState("disconnected"); showError(FINAL_CLOSES[event.code]); return; }
      const delay = Math.min(30000, 1000 * 2 ** retries) * (0.5 + Math.random() / 2);
      retries += 1;
      setState("reconnecting");
      setTimeout(connect, delay);
    });
  }

  $("watch-unmute").addEventListener("click", () => { video.muted = false; video.play().catch(() => {}); });
  window.addEventListener("beforeunload", () => { finished = true; send({type: "bye"}); });
  connect();
})();

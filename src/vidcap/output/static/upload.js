/* The `vidcap serve` page: send a dropped video to POST v1/caption with a progress bar, then play
   it (from the browser's own copy) with the captions the server returned. */
"use strict";

(() => {
  const form = document.getElementById("upload");
  if (!form) return;
  const drop = document.getElementById("drop");
  const input = document.getElementById("file");
  const progress = document.getElementById("progress");
  const status = document.getElementById("status");
  const result = document.getElementById("result");
  const player = document.getElementById("player");
  let objectUrl = null;

  function say(text, error = false) {
    status.textContent = text;
    status.classList.toggle("error", error);
  }

  // The track as a data: URL of WebVTT text (UTF-8, base64).
  function trackUrl(captions) {
    const bytes = new TextEncoder().encode(vidcap.vtt(captions));
    let binary = "";
    bytes.forEach((b) => { binary += String.fromCharCode(b); });
    return `data:text/vtt;charset=utf-8;base64,${btoa(binary)}`;
  }

  function show(file, answer) {
    // A fresh <video> each time: a track added to a playing element would not be picked.
    const old = player.querySelector("video");
    const video = document.createElement("video");
    video.controls = true;
    video.preload = "metadata";
    const track = document.createElement("track");
    track.kind = "captions";
    track.srclang = "en";
    track.label = "vidcap";
    track.default = true;
    track.src = trackUrl(answer.captions);
    video.append(track);
    if (objectUrl) URL.revokeObjectURL(objectUrl);
    objectUrl = URL.createObjectURL(file);
    video.src = objectUrl;
    old.replaceWith(video);
    const list = player.querySelector("ol.captions");
    vidcap.fillList(list, answer.captions);
    document.getElementById("result-name").textContent = file.name;
    player.querySelector(".video-error").hidden = true;
    result.hidden = false;
    vidcap.attach(player);
    track.track.mode = "showing";
  }

  function send(file) {
    const data = new FormData();
    data.append("video", file);
    const dense = document.getElementById("dense").checked;
    const seconds = document.getElementById("seconds").value.trim();
    data.append("dense", dense ? "true" : "false");
    if (dense && seconds) data.append("segment_seconds", seconds);
    const request = new XMLHttpRequest();
    request.open("POST", form.getAttribute("action"));
    request.responseType = "json";
    progress.hidden = false;
    progress.value = 0;
    say(`Uploading ${file.name}\u2026`);
    request.upload.onprogress = (e) => { if (e.lengthComputable) progress.value = e.loaded / e.total; };
    request.upload.onload = () => {
      progress.removeAttribute("value"); // indeterminate while the model works
      say(`Captioning ${file.name}\u2026`);
    };
    request.onload = () => {
      progress.hidden = true;
      const answer = request.response;
      if (request.status !== 200) {
        say((answer && answer.error) || `The server answered ${request.status}.`, true);
        return;
      }
      const n = answer.captions.length;
      say(`${n} caption${n === 1 ? "" : "s"} for ${file.name} (${vidcap.clock(answer.duration || 0)}).`);
      show(file, answer);
    };
    request.onerror = () => { progress.hidden = true; say("The server could not be reached.", true); };
    request.send(data);
  }

  input.addEventListener("change", () => { if (input.files.length) send(input.files[0]); });
  ["dragenter", "dragover"].forEach((e) => drop.addEventListener(e, (ev) => {
    ev.preventDefault();
    drop.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((e) => drop.addEventListener(e, () => drop.classList.remove("over")));
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    if (ev.dataTransfer.files.length) send(ev.dataTransfer.files[0]);
  });
})();

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
  const notices = document.getElementById("notices");
  const dense = document.getElementById("dense");
  const seconds = document.getElementById("seconds");
  let objectUrl = null;

  // Windows apply to timed captions only: the field says so by being off without them.
  const followDense = () => { seconds.disabled = !dense.checked; };
  dense.addEventListener("change", followDense);
  followDense();

  function say(text, error = false) {
    status.textContent = text;
    status.classList.toggle("error", error);
  }

  // What to know before trusting the captions, as the report shows it: the video is unlike the
  // model's training videos, or its decoder read only part of it.
  function warn(answer) {
    const lines = [];
    const ood = answer.ood;
    if (ood && ood.flagged) {
      lines.push(`This video is unlike the videos the model was trained on (out-of-domain score `
        + `${ood.score.toFixed(2)} > ${ood.threshold.toFixed(2)}): its captions are likely wrong.`);
    }
    (answer.warnings || []).forEach((w) => lines.push(w));
    notices.replaceChildren(...lines.map((line) => {
      const item = document.createElement("li");
      item.textContent = line;
      return item;
    }));
    notices.hidden = lines.length === 0;
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
    warn(answer);
    result.hidden = false;
    vidcap.attach(player);
    track.track.mode = "showing";
  }

  function send(file) {
    // The server would answer 413 once the limit passed; a big file is refused before its upload.
    if (file.size > Number(form.dataset.maxBytes)) {
      result.hidden = true;
      const size = `${(file.size / 2 ** 20).toFixed(1)} MB`;
      say(`${file.name} is ${size}, over this server's limit of ${form.dataset.maxText}.`, true);
      return;
    }
    const data = new FormData();
    data.append("video", file);
    const span = seconds.value.trim();
    data.append("dense", dense.checked ? "true" : "false");
    if (dense.checked && span) data.append("segment_seconds", span);
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
        result.hidden = true; // the last video's captions are not this one's
        say((answer && answer.error) || `The server answered ${request.status}.`, true);
        return;
      }
      const n = answer.captions.length;
      say(`${n} caption${n === 1 ? "" : "s"} for ${file.name} (${vidcap.clock(answer.duration || 0)}).`);
      show(file, answer);
    };
    request.onerror = () => {
      progress.hidden = true;
      result.hidden = true;
      say("The server could not be reached.", true);
    };
    request.send(data);
  }

  input.addEventListener("change", () => {
    if (!input.files.length) return;
    send(input.files[0]);
    input.value = ""; // the same file chosen again (other options) is sent again
  });
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

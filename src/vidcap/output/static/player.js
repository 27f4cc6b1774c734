/* vidcap player: a <video> with its captions as a WebVTT track and as a list beside it.
   Click a caption and the video seeks to its start; the caption being shown is highlighted.
   Used by the report pages (opened from file://) and by the `vidcap serve` page. */
"use strict";

const vidcap = (() => {
  const EMPTY_CUE_TEXT = "\u2026"; // what vidcap writes for a caption with no text
  const SEEK_INTO = 0.001; // seconds

  // Python's round(): halves to the even neighbour, so times read the same as vidcap prints them.
  function round(x) {
    const r = Math.round(x);
    return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
  }

  // "M:SS.d", or "H:MM:SS.d" from one hour: vidcap.output.formats.format_clock.
  function clock(seconds) {
    let tenths = Math.max(0, round(seconds * 10));
    const minutes = Math.floor(tenths / 600);
    tenths -= minutes * 600;
    const hours = Math.floor(minutes / 60);
    const secs = `${String(Math.floor(tenths / 10)).padStart(2, "0")}.${tenths % 10}`;
    return hours ? `${hours}:${String(minutes % 60).padStart(2, "0")}:${secs}` : `${minutes}:${secs}`;
  }

  // WebVTT text for captions [{start, end, text}] (as vidcap.output.formats.to_vtt writes it).
  function vtt(captions) {
    const stamp = (s) => {
      const ms = Math.max(0, round(s * 1000));
      const p = (n, w) => String(n).padStart(w, "0");
      return `${p(Math.floor(ms / 3600000), 2)}:${p(Math.floor(ms / 60000) % 60, 2)}:` +
        `${p(Math.floor(ms / 1000) % 60, 2)}.${p(ms % 1000, 3)}`;
    };
    const escape = (t) => t.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
    const cues = captions.map((c) => {
      const start = Math.max(0, round(c.start * 1000)) / 1000;
      const end = Math.max(c.end, start + 0.001);
      const lines = c.text.split("\n").map((l) => l.trim()).filter((l) => l);
      return `${stamp(start)} --> ${stamp(end)}\n${escape(lines.join("\n") || EMPTY_CUE_TEXT)}\n`;
    });
    return ["WEBVTT\n", ...cues].join("\n");
  }

  // Fill an <ol class="captions"> with one button per caption.
  function fillList(list, captions) {
    list.replaceChildren(...captions.map((c) => {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.start = c.start;
      button.dataset.end = c.end;
      const time = document.createElement("span");
      time.className = "time";
      time.textContent = `${clock(c.start)}\u2013${clock(c.end)}`;
      const text = document.createElement("span");
      text.className = "text";
      text.textContent = c.text.trim() || EMPTY_CUE_TEXT;
      button.append(time, text);
      item.append(button);
      return item;
    }));
  }

  // Wire a player: clicking a caption seeks, playing highlights the current caption.
  function attach(player) {
    const video = player.querySelector("video");
    const list = player.querySelector("ol.captions");
    const items = Array.from(list.querySelectorAll("li"));
    const spans = items.map((li) => {
      const b = li.querySelector("button");
      return [parseFloat(b.dataset.start), parseFloat(b.dataset.end)];
    });
    items.forEach((li, i) => li.querySelector("button").addEventListener("click", () => {
      // 1 ms in: at a caption's very start the previous one (ending there) would show too.
      video.currentTime = spans[i][0] + SEEK_INTO;
      highlight();
    }));
    let current = null;
    function highlight() {
      const t = video.currentTime;
      // The last caption that has started and not ended (segments may touch end to start).
      let found = null;
      spans.forEach(([start, end], i) => { if (start <= t && t < end) found = items[i]; });
      if (found === current) return;
      if (current) { current.classList.remove("current"); current.removeAttribute("aria-current"); }
      current = found;
      if (!current) return;
      current.classList.add("current");
      current.setAttribute("aria-current", "true");
      // Keep it in view inside the list without scrolling the page.
      const top = current.offsetTop - list.offsetTop;
      if (top < list.scrollTop || top + current.offsetHeight > list.scrollTop + list.clientHeight) {
        list.scrollTop = top - list.clientHeight / 3;
      }
    }
    ["timeupdate", "seeked", "loadedmetadata"].forEach((e) => video.addEventListener(e, highlight));
    const error = player.querySelector(".video-error");
    if (error) video.addEventListener("error", () => { error.hidden = false; });
    highlight();
  }

  return { clock, vtt, fillList, attach };
})();

document.querySelectorAll(".player[data-ready]").forEach(vidcap.attach);

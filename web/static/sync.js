// Sync player of the case page: every recording of the inspection on the corrected timeline
// (each placed at its recorded_start; a later one joins at its time), one play/seek control,
// a segment marked in/out on the shared timeline.
// Keys: space play/pause, ←/→ one second, J back (again: faster), K pause, L forward (again: faster),
// I / O mark in / out.  No framework, no build step.
(function () {
  "use strict";
  function ready(fn) {
    if (document.readyState !== "loading") { fn(); } else { document.addEventListener("DOMContentLoaded", fn); }
  }
  function pad(n) { return (n < 10 ? "0" : "") + n; }

  ready(function () {
    var root = document.getElementById("sync");
    if (!root) { return; }
    var seek = document.getElementById("sync-seek");
    var playBtn = document.getElementById("sync-play");
    var clock = document.getElementById("sync-clock");
    var pos = document.getElementById("sync-pos");
    var segOut = document.getElementById("sync-segment");
    var segList = document.getElementById("sync-segment-items");
    // Station offset from the origin's label ("2026-03-12 09:31:00 +08:00").
    var label = root.getAttribute("data-origin-label") || "";
    var m = /([+-])(\d\d):(\d\d)$/.exec(label);
    var tzMinutes = m ? (m[1] === "-" ? -1 : 1) * (parseInt(m[2], 10) * 60 + parseInt(m[3], 10)) : 0;
    var tzText = m ? m[0] : "UTC";

    var items = Array.prototype.map.call(root.querySelectorAll(".sync-item"), function (el) {
      return { el: el, video: el.querySelector("video"), id: el.getAttribute("data-media"),
               start: parseFloat(el.getAttribute("data-start")), dur: parseFloat(el.getAttribute("data-duration")) };
    });
    if (!items.length) { return; }
    var origin = Math.min.apply(null, items.map(function (i) { return i.start; }));
    items.forEach(function (i) { i.offset = i.start - origin; });
    var total = Math.max.apply(null, items.map(function (i) { return i.offset + i.dur; }));
    seek.max = String(total);

    var t = 0, playing = false, rate = 1, dir = 1, last = null, markIn = null, markOut = null;

    function stationTime(sec) {
      var d = new Date((origin + sec + tzMinutes * 60) * 1000);
      return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " +
        pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds()) + "." +
        Math.floor((d.getUTCMilliseconds()) / 100) + " " + tzText;
    }

    function apply(force) {
      items.forEach(function (i) {
        var local = t - i.offset;
        var inside = local >= 0 && local < i.dur;
        var target = Math.min(Math.max(local, 0), i.dur);
        i.el.classList.toggle("waiting", local < 0);
        i.el.classList.toggle("ended", local >= i.dur);
        i.el.setAttribute("data-local", local.toFixed(2));
        var v = i.video;
        if (playing && inside && dir > 0) {
          if (v.playbackRate !== rate) { v.playbackRate = rate; }
          if (v.paused) {
            v.currentTime = target;
            var p = v.play();
            if (p && p.catch) { p.catch(function () { /* not playable yet: kept in step below */ }); }
          } else if (Math.abs(v.currentTime - target) > 0.35) {
            v.currentTime = target;
          }
        } else {
          if (!v.paused) { v.pause(); }
          if (force || Math.abs(v.currentTime - target) > 0.05) { v.currentTime = target; }
        }
      });
      seek.value = String(t);
      root.setAttribute("data-position", t.toFixed(3));
      root.setAttribute("data-playing", playing ? (dir > 0 ? "forward" : "backward") : "no");
      root.setAttribute("data-rate", String(rate));
      clock.textContent = stationTime(t);
      pos.textContent = t.toFixed(1) + " / " + total.toFixed(1) + " s" + (playing && rate !== 1 ? " ×" + rate : "") +
        (playing && dir < 0 ? " ◀" : "");
      playBtn.textContent = playing ? playBtn.getAttribute("data-pause") : playBtn.getAttribute("data-play");
    }

    function tick(now) {
      if (!playing) { last = null; return; }
      if (last !== null) { t += dir * rate * (now - last) / 1000; }
      last = now;
      if (t <= 0) { t = 0; if (dir < 0) { playing = false; } }
      if (t >= total) { t = total; playing = false; }
      apply(false);
      if (playing) { window.requestAnimationFrame(tick); } else { last = null; }
    }

    function play(direction, speed) {
      dir = direction; rate = speed;
      if (!playing) {
        if (dir > 0 && t >= total) { t = 0; }
        playing = true; last = null;
        apply(true);
        window.requestAnimationFrame(tick);
      } else {
        apply(false);
      }
    }
    function pause() { playing = false; last = null; apply(true); }
    function seekTo(sec) { t = Math.min(Math.max(sec, 0), total); apply(true); }

    function showSegment() {
      var a = markIn, b = markOut;
      if (a === null && b === null) { segOut.textContent = "—"; segList.textContent = ""; return; }
      if (a !== null && b !== null && b < a) { var x = a; a = b; b = x; }
      segOut.setAttribute("data-in", a === null ? "" : a.toFixed(3));
      segOut.setAttribute("data-out", b === null ? "" : b.toFixed(3));
      segOut.textContent = (a === null ? "…" : stationTime(a)) + " → " + (b === null ? "…" : stationTime(b)) +
        (a !== null && b !== null ? "  (" + (b - a).toFixed(1) + " s)" : "");
      segList.textContent = "";
      if (a === null || b === null) { return; }
      items.forEach(function (i) {
        var from = Math.max(a - i.offset, 0), to = Math.min(b - i.offset, i.dur);
        if (to <= from) { return; }
        var li = document.createElement("li");
        li.setAttribute("data-media", i.id);
        li.setAttribute("data-from", from.toFixed(1));
        li.setAttribute("data-to", to.toFixed(1));
        li.textContent = "#" + i.id + ": " + from.toFixed(1) + " s → " + to.toFixed(1) + " s   custody redact " + i.id +
          " --from " + from.toFixed(1) + " --to " + to.toFixed(1) + " --reason …  ";
        // The segment goes straight into the redaction form of that recording (its own times).
        var link = document.createElement("a");
        link.className = "sync-redact";
        link.href = "/media/" + i.id + "/redact?from=" + from.toFixed(1) + "&to=" + to.toFixed(1);
        link.textContent = segList.getAttribute("data-redact-label") || "Redact";
        li.appendChild(link);
        segList.appendChild(li);
      });
    }

    playBtn.addEventListener("click", function () { if (playing) { pause(); } else { play(1, 1); } });
    seek.addEventListener("input", function () { seekTo(parseFloat(seek.value)); });
    document.getElementById("sync-in").addEventListener("click", function () { markIn = t; showSegment(); });
    document.getElementById("sync-out").addEventListener("click", function () { markOut = t; showSegment(); });
    document.getElementById("sync-clear").addEventListener("click", function () { markIn = markOut = null; showSegment(); });
    items.forEach(function (i) {
      // Clicking a recording's own picture toggles its sound (all but the first start muted).
      i.video.addEventListener("click", function () { i.video.muted = !i.video.muted; i.el.classList.toggle("muted", i.video.muted); });
      i.video.addEventListener("loadedmetadata", function () { apply(true); });
    });

    document.addEventListener("keydown", function (ev) {
      var tag = (ev.target && ev.target.tagName) || "";
      if (/^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(tag) && !(tag === "INPUT" && ev.target === seek)) { return; }
      if (ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
      var k = ev.key;
      if (k === " " || k === "Spacebar") { if (playing) { pause(); } else { play(1, 1); } }
      else if (k === "ArrowLeft") { seekTo(t - 1); }
      else if (k === "ArrowRight") { seekTo(t + 1); }
      else if (k === "k" || k === "K") { pause(); }
      else if (k === "l" || k === "L") { play(1, playing && dir > 0 ? Math.min(rate * 2, 8) : 1); }
      else if (k === "j" || k === "J") { play(-1, playing && dir < 0 ? Math.min(rate * 2, 8) : 1); }
      else if (k === "i" || k === "I") { markIn = t; showSegment(); }
      else if (k === "o" || k === "O") { markOut = t; showSegment(); }
      else { return; }
      ev.preventDefault();
    });
    apply(true);
  });
})();

// Player: start at ?t= (a keyframe's offset) and let keyframes on the recording's own
// page seek the player instead of reloading.  No framework, no build step.
(function () {
  "use strict";
  function ready(fn) {
    if (document.readyState !== "loading") { fn(); } else { document.addEventListener("DOMContentLoaded", fn); }
  }
  ready(function () {
    var player = document.getElementById("player");
    if (!player) { return; }
    var start = parseFloat(player.getAttribute("data-start") || "0");
    if (start > 0) {
      player.addEventListener("loadedmetadata", function once() {
        player.removeEventListener("loadedmetadata", once);
        player.currentTime = Math.min(start, player.duration || start);
        var p = player.play();
        if (p && p.catch) { p.catch(function () { /* autoplay refused: the user presses play */ }); }
      });
    }
    var frames = document.querySelectorAll("a.keyframe");
    for (var i = 0; i < frames.length; i++) {
      frames[i].addEventListener("click", function (ev) {
        ev.preventDefault();
        player.currentTime = parseFloat(this.getAttribute("data-offset") || "0");
        var p = player.play();
        if (p && p.catch) { p.catch(function () {}); }
        player.scrollIntoView({block: "center"});
      });
    }
  });
})();

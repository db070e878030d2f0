// Device page: refreshes the LED patterns and the display image once a second.
(function () {
  "use strict";
  const image = document.getElementById("display");
  let generation = null;
  async function refresh() {
    try {
      const state = await (await fetch("/api/v1/admin/device")).json();
      for (const color of ["green", "blue", "red"]) {
        const led = document.getElementById("led-" + color);
        led.className = "led led-" + color + " pattern-" + state[color];
        document.getElementById("led-" + color + "-text").textContent = color + ": " + state[color].replace("_", " ");
      }
      if (state.generation !== generation) {
        generation = state.generation;
        image.src = "/api/v1/admin/device/display.png?g=" + generation;
      }
    } catch (e) { /* the next tick tries again */ }
  }
  setInterval(refresh, 1000);
})();

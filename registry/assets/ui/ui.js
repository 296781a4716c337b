// Wharf's web interface: a little script of its own, no framework. Every page works without it; it adds
// copy buttons and showing hidden values. No request leaves this origin.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // <button data-copy="TEXT">: copies TEXT to the clipboard.
  for (const b of document.querySelectorAll("button[data-copy]")) {
    b.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(b.dataset.copy);
        b.textContent = "Copied";
      } catch (_) {
        b.textContent = "Select and copy";
      }
    });
  }
  // <button data-reveal="ID">: shows the element with that id's hidden values (environment values).
  for (const b of document.querySelectorAll("button[data-reveal]")) {
    b.addEventListener("click", () => {
      const target = document.getElementById(b.dataset.reveal);
      if (!target) return;
      const shown = target.classList.toggle("revealed");
      for (const v of target.querySelectorAll("[data-value]")) {
        v.textContent = shown ? v.dataset.value : "••••••";
      }
      b.setAttribute("aria-pressed", shown ? "true" : "false");
      b.textContent = shown ? "Hide values" : "Show values";
    });
  }
});

// memledger UI: decisions in the review queue without reloading the page. Without
// JavaScript the same forms post back to the server.
"use strict";

document.addEventListener("submit", async (event) => {
  const form = event.target;
  if (!form.classList.contains("decide")) return;
  event.preventDefault();
  const row = form.closest("tr");
  const action = event.submitter ? event.submitter.value : "promote";
  const reason = form.querySelector("input[name=reason]").value.trim();
  const error = form.querySelector(".error");
  error.textContent = "";
  try {
    const res = await fetch(`/memory/${encodeURIComponent(row.dataset.id)}/${action}`, {
      method: "POST",
      // No actor header: the actor is whoever signed in (the session cookie goes along).
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(reason ? { note: reason } : {}),
    });
    if (!res.ok) {
      const problem = await res.json().catch(() => ({}));
      error.textContent = problem.detail || res.statusText;
      return;
    }
    const body = row.parentElement;
    row.remove();
    const left = document.querySelectorAll("#queue tbody tr[data-id]").length;
    const count = document.getElementById("queue-count");
    if (count) count.textContent = String(left);
    if (left === 0 && body) {
      const empty = body.insertRow();
      empty.className = "empty";
      const cell = empty.insertCell();
      cell.colSpan = 7;
      cell.textContent = "No candidates waiting.";
    }
  } catch (e) {
    error.textContent = String(e);
  }
});

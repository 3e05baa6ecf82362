// Short notes at the corner of the screen: what an action did, or why the platform refused it.

/** Show a note for a few seconds; kind "error" stays longer. */
export function toast(message, kind = "info") {
  const box = document.getElementById("toasts");
  if (!box) return;
  const el = document.createElement("div");
  el.className = `toast ${kind}`;
  el.dataset.testid = "toast";
  el.textContent = message;
  box.append(el);
  setTimeout(() => el.remove(), kind === "error" ? 9000 : 4000);
}

/** A failed action as an operator should read it: 403 names the role needed, 401 asks to log in again. */
export function actionFailed(what, err) {
  if (err.status === 403) toast(`Not allowed to ${what}: ${err.message}`, "error");
  else if (err.status === 401) toast(`Your session ended: log in again to ${what}.`, "error");
  else toast(`Could not ${what}: ${err.message}`, "error");
}

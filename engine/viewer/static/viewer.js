// The version slider of a session page. Every message the session ever
// showed is on the page once, with the versions that added it
// (data-added) and took it away (data-removed); moving the slider shows
// and hides only the messages added or removed between the two versions,
// so a step costs what changed, not the length of the transcript.
(function () {
  "use strict";
  const slider = document.getElementById("version");
  if (!slider) return;
  const data = JSON.parse(document.getElementById("entries").textContent);
  const entries = data.entries; // [version, time, actor, kind, summary, revision, title index]
  const first = entries.length ? entries[0][0] : 1;
  const byAdded = new Map();
  const byRemoved = new Map();
  const messages = Array.from(document.querySelectorAll("#transcript .msg"));
  const put = (map, key, element) => {
    const list = map.get(key);
    if (list) list.push(element);
    else map.set(key, [element]);
  };
  // Each group of messages is hidden while none of its messages shows, so
  // the page is only as tall as the transcript at the version shown.
  const shownIn = new Map();
  for (const element of messages) {
    put(byAdded, Number(element.dataset.added), element);
    if (element.dataset.removed) put(byRemoved, Number(element.dataset.removed), element);
    const group = element.parentElement;
    shownIn.set(group, (shownIn.get(group) || 0) + (element.hidden ? 0 : 1));
  }
  const where = document.getElementById("where");
  const count = document.getElementById("count");
  const revision = document.getElementById("revision");
  const title = document.getElementById("title");
  const event = document.getElementById("event");
  const follow = document.getElementById("follow");
  let current = Number(slider.value);
  let visible = Number(count.textContent);
  let addressTimer = 0;

  const setHidden = (list, hidden) => {
    if (!list) return;
    for (const element of list) {
      if (element.hidden === hidden) continue;
      element.hidden = hidden;
      visible += hidden ? -1 : 1;
      const group = element.parentElement;
      const left = shownIn.get(group) + (hidden ? -1 : 1);
      shownIn.set(group, left);
      group.hidden = left === 0;
    }
  };
  const mark = (version, on) => {
    for (const element of byAdded.get(version) || []) element.classList.toggle("changed", on);
  };
  const change = () => (byAdded.get(current) || []).find((element) => !element.hidden) || null;

  function show(target) {
    const max = Number(slider.max);
    const version = Math.max(Number(slider.min), Math.min(max, target));
    mark(current, false);
    if (version > current) {
      for (let step = current + 1; step <= version; step++) {
        setHidden(byRemoved.get(step), true);
        setHidden(byAdded.get(step), false);
      }
    } else {
      for (let step = current; step > version; step--) {
        setHidden(byAdded.get(step), true);
        setHidden(byRemoved.get(step), false);
      }
    }
    current = version;
    mark(current, true);
    slider.value = String(version);
    count.textContent = String(visible);
    where.firstChild.textContent = "v" + version + " of " + max + " · ";
    const entry = entries[version - first];
    if (entry) {
      event.textContent =
        "v" + entry[0] + " · " + entry[1] + (entry[2] ? " · " + entry[2] : "") + " · " + entry[3] + ": " + entry[4];
      revision.textContent = entry[5];
      title.textContent = data.titles[entry[6]];
    }
    // The address names the version shown (to link to it), updated once the
    // slider rests: browsers throttle a page that rewrites it on every step.
    clearTimeout(addressTimer);
    addressTimer = setTimeout(() => {
      const url = new URL(window.location.href);
      url.searchParams.set("v", String(current));
      window.history.replaceState(null, "", url);
    }, 150);
    if (follow.checked) change()?.scrollIntoView({ block: "nearest" });
    jump.disabled = change() === null;
    document.body.dataset.version = String(version);
  }

  slider.addEventListener("input", () => show(Number(slider.value)));
  document.getElementById("previous").addEventListener("click", () => show(current - 1));
  document.getElementById("next").addEventListener("click", () => show(current + 1));
  const jump = document.getElementById("jump");
  jump.addEventListener("click", () => change()?.scrollIntoView({ block: "center" }));
  jump.disabled = change() === null; // this version added no message (a title, an erasure, usage)
  // Opened at a version (a link from the history or the graph): show its change.
  if (new URL(window.location.href).searchParams.has("v")) change()?.scrollIntoView({ block: "center" });
  document.addEventListener("keydown", (key) => {
    if (key.target instanceof HTMLInputElement && key.target !== slider) return;
    if (key.key === "ArrowLeft" && key.target !== slider) show(current - 1);
    if (key.key === "ArrowRight" && key.target !== slider) show(current + 1);
  });
  document.body.dataset.version = String(current);
  document.body.dataset.ready = "true";
})();

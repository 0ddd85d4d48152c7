// Client-side search over search.json (one record per section: page, anchor, title, text).
(function () {
  let records = null;
  const norm = (s) => s.toLowerCase();
  async function load() {
    if (records) return records;
    const resp = await fetch("search.json");
    records = await resp.json();
    return records;
  }
  function snippet(text, word) {
    const i = norm(text).indexOf(word);
    const start = Math.max(0, i - 40);
    return (start > 0 ? "…" : "") + text.slice(start, start + 120) + "…";
  }
  async function run(query) {
    const list = document.getElementById("search-results");
    list.innerHTML = "";
    const words = norm(query).split(/\s+/).filter((w) => w.length > 1);
    if (!words.length) return;
    const recs = await load();
    const hits = recs
      .map((r) => {
        const hay = norm(r.title + " " + r.text);
        if (!words.every((w) => hay.includes(w))) return null;
        const score = words.reduce((s, w) => s + (norm(r.title).includes(w) ? 10 : 0) + hay.split(w).length - 1, 0);
        return { r, score };
      })
      .filter(Boolean)
      .sort((a, b) => b.score - a.score)
      .slice(0, 12);
    if (!hits.length) {
      list.innerHTML = "<li class='none'>No match</li>";
      return;
    }
    for (const { r } of hits) {
      const li = document.createElement("li");
      const a = document.createElement("a");
      a.href = r.page + (r.anchor ? "#" + r.anchor : "");
      a.textContent = r.title;
      const s = document.createElement("span");
      s.className = "snippet";
      s.textContent = snippet(r.text, words[0]);
      li.append(a, s);
      list.append(li);
    }
  }
  document.addEventListener("DOMContentLoaded", () => {
    const input = document.getElementById("search-input");
    if (!input) return;
    let timer = null;
    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => run(input.value), 150);
    });
  });
})();

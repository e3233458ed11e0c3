// Hash navigation: #resources (with #console=NAME for one resource's console), #traces,
// #trace/<id>, #metrics, #logs (#logs?trace_id=... for one trace's logs). A trace is a URL.

const TAB_OF = { trace: "traces" };

export function parseHash(hash) {
  const text = hash.replace(/^#/, "");
  if (text.startsWith("trace/")) return { view: "trace", id: decodeURIComponent(text.slice(6)) };
  const [name, query] = text.split("?", 2);
  if (["traces", "metrics", "logs"].includes(name)) {
    return { view: name, params: new URLSearchParams(query || "") };
  }
  // Also the console's older links, #logs=NAME.
  return { view: "resources", params: new URLSearchParams(text) };
}

export function startNavigation(pages) {
  let shown = null;
  const route = () => {
    const where = parseHash(location.hash);
    for (const view of document.querySelectorAll(".view")) {
      view.hidden = view.dataset.view !== where.view;
    }
    const tab = TAB_OF[where.view] || where.view;
    for (const link of document.querySelectorAll(".tabs a")) {
      if (link.dataset.tab === tab) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    if (shown && shown !== pages[where.view]) shown.hide();
    shown = pages[where.view] || null;
    if (shown) shown.show(where);
  };
  window.addEventListener("hashchange", route);
  route();
  return () => shown && shown.show(parseHash(location.hash));
}

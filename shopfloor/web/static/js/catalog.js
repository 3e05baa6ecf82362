// The plant's asset tree and tag catalogue, loaded once and shared by the pages.

import { getJSON } from "./api.js";

export const catalog = {
  tree: null,
  tags: new Map(), // path -> tag definition (unit, type, states, range, description)
  nodes: new Map(), // path -> asset node
  loaded: null,

  load(force = false) {
    if (!this.loaded || force) {
      this.loaded = Promise.all([getJSON("/api/assets"), getJSON("/api/tags")]).then(([tree, tags]) => {
        this.tree = tree;
        this.tags = new Map(tags.map((t) => [t.path, t]));
        this.nodes = new Map();
        const walk = (node, parent) => {
          node.parent = parent;
          this.nodes.set(node.path, node);
          for (const child of node.children) walk(child, node.path);
        };
        walk(tree, null);
        return this;
      });
      this.loaded.catch(() => { this.loaded = null; });
    }
    return this.loaded;
  },

  /** Every equipment node, in tree order. */
  equipment() {
    return [...this.nodes.values()].filter((n) => n.level === "equipment");
  },

  /** The chain of nodes from the site down to path. */
  ancestry(path) {
    const out = [];
    for (let node = this.nodes.get(path); node; node = this.nodes.get(node.parent)) out.unshift(node);
    return out;
  },
};

/** Server time minus browser time, from the dashboard endpoints' now_ms (ages are judged on the server's clock). */
export const clock = {
  offset: 0,
  update(serverNowMs, requestStartedMs) {
    const mid = (requestStartedMs + Date.now()) / 2;
    this.offset = serverNowMs - mid;
  },
  now() {
    return Date.now() + this.offset;
  },
};

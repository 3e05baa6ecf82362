// Who is logged in, and what their role may do. With auth off (the demo) everyone acts as an anonymous admin and
// no login is ever shown; with it on, the login form posts /api/auth/login and the HttpOnly session cookie does the
// rest (fetches and WebSockets alike, same origin).

import { getJSON, sendJSON } from "./api.js";

export const ROLES = ["viewer", "operator", "engineer", "admin"];

export const session = {
  enabled: false,
  name: null,
  role: null,
  listeners: new Set(),

  /** Ask the platform who we are; resolves with true when someone is logged in (or auth is off). */
  async load() {
    const me = await getJSON("/api/auth/session"); // never 401: name null when nobody is logged in
    this.enabled = Boolean(me.auth_enabled);
    this.name = me.name;
    this.role = me.role;
    this.emit();
    return this.loggedIn;
  },

  get loggedIn() {
    return !this.enabled || this.name !== null;
  },

  /** May the current user do what needs `role`? */
  can(role) {
    if (!this.enabled) return true;
    return this.role !== null && ROLES.indexOf(this.role) >= ROLES.indexOf(role);
  },

  /** Title of a control the user may not use: which role it needs. */
  needs(role) {
    return this.can(role) ? "" : `Needs role ${role}; ${this.name ?? "you"} ${this.role ? `is ${this.role}` : "are not logged in"}`;
  },

  async login(username, password) {
    const body = await sendJSON("/api/auth/login", { username, password });
    this.enabled = true;
    this.name = body.name;
    this.role = body.role;
    this.emit();
  },

  async logout() {
    try {
      await sendJSON("/api/auth/logout");
    } finally {
      this.name = null;
      this.role = null;
      this.emit();
    }
  },

  /** The session ended on the server (401): forget the user so the shell asks to log in again. */
  lost() {
    if (!this.enabled || this.name === null) return;
    this.name = null;
    this.role = null;
    this.emit();
  },

  onChange(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  },

  emit() {
    for (const fn of this.listeners) fn(this);
  },
};

// The walcast demo page: two official socket.io-client connections (an
// admin's and a viewer's token), buttons that ask the demo to write rows,
// record locks, and a transport cut that shows connection state recovery.
// Plain browser JavaScript: no build step, no framework.
"use strict";

const MAX_EVENTS = 50; // per pane; older entries drop off the bottom
const CUT_RECONNECT_DELAY_MS = 2500; // long enough for the write made while cut to commit first

const $ = (root, field) => root.querySelector(`[data-field="${field}"]`);

function setText(el, text, cls) {
  el.textContent = text;
  if (cls !== undefined) el.className = cls;
}

function clock() {
  const d = new Date();
  return d.toTimeString().slice(0, 8) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

async function post(action) {
  const res = await fetch(`/demo/actions/${encodeURIComponent(action)}`, { method: "POST" });
  const body = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
  if (!res.ok) throw new Error(body.error || `HTTP ${res.status}`);
  return body;
}

function showWrite(text, ok) {
  setText(document.getElementById("last-write"), `${clock()}  ${text}`, ok ? "small ok" : "small bad");
}

async function write(action) {
  try {
    const r = await post(action);
    showWrite(`${r.action}: ${r.sql}  →  ${r.result}`, true);
    return r;
  } catch (err) {
    showWrite(`${action} failed: ${err.message}`, false);
    throw err;
  }
}

// What a row event's payload shows: the contract's {type, data}, the flat
// settings row, or a lock announcement.
function describe(event, payload) {
  if (event.startsWith("lock:update:")) return { type: "LOCK", row: payload };
  if (payload && typeof payload.type === "string") {
    if (payload.type === "RESYNC") return { type: "RESYNC", row: "refetch the table" };
    if (payload.type === "DELETE") return { type: "DELETE", row: payload.data ?? { id: payload.id } };
    return { type: payload.type, row: payload.data };
  }
  return { type: "ROW", row: payload }; // settings:update: the row itself, no type
}

class Pane {
  constructor(cfg, page) {
    this.cfg = cfg;
    this.page = page;
    this.count = 0;
    this.awaitingReplay = null; // id of the donation written while this pane was cut
    this.el = document.getElementById("pane-template").content.firstElementChild.cloneNode(true);
    this.el.dataset.pane = cfg.id;
    setText($(this.el, "title"), cfg.title);
    setText($(this.el, "identity"), `${cfg.username}, role ${cfg.role}, memberId ${cfg.memberId ?? "null"}`);
    setText($(this.el, "rooms"), cfg.rooms);
    setText($(this.el, "lock-member"), `${page.lockMember.name} (member ${page.lockMember.id})`);
    setText($(this.el, "cut-delay"), `${CUT_RECONNECT_DELAY_MS / 1000} s`);
    this.button("cut").addEventListener("click", () => this.cut());
    this.button("reconnect").addEventListener("click", () => this.socket.connect());
    this.button("edit").addEventListener("click", () => this.lock("lock:acquire"));
    this.button("done").addEventListener("click", () => this.lock("lock:release"));
    document.getElementById("panes").append(this.el);
    this.connect();
  }

  button(name) {
    return this.el.querySelector(`[data-do="${name}"]`);
  }

  connect() {
    // forceNew: each pane gets its own Manager and transport, so cutting
    // one leaves the other connected.
    const socket = io({ path: this.page.socketPath, auth: { token: this.cfg.token }, forceNew: true });
    this.socket = socket;
    socket.on("connect", () => {
      socket.io.reconnectionDelay(1000); // back to the defaults after a cut
      socket.io.randomizationFactor(0.5);
      this.state(`connected${socket.recovered ? " (session recovered)" : ""}`, "ok");
      setText($(this.el, "sid"), socket.id);
      setText($(this.el, "transport"), socket.io.engine.transport.name);
      setText($(this.el, "recovered"), String(socket.recovered), socket.recovered ? "ok" : "");
      socket.io.engine.once("upgrade", (t) => setText($(this.el, "transport"), t.name));
      this.checkLock();
    });
    socket.on("disconnect", (reason) => {
      setText($(this.el, "recovered"), "–", "");
      this.state(`disconnected: ${reason}${socket.active ? ", reconnecting…" : ""}`, "bad");
    });
    socket.on("connect_error", (err) => {
      setText($(this.el, "error"), err.message, "bad");
      this.state(socket.active ? "connect_error, retrying…" : "refused: the client does not retry (press Reconnect)", "bad");
    });
    socket.io.on("reconnect_attempt", (n) => this.state(`reconnecting (attempt ${n})…`, "warn"));
    socket.onAny((event, ...args) => this.show(event, args));
    socket.on(`lock:update:member:${this.page.lockMember.id}`, (st) => this.badge(st));
    this.state("connecting…", "warn");
  }

  state(text, cls) {
    setText($(this.el, "state"), text, cls);
    this.button("reconnect").disabled = this.socket.connected || this.socket.active;
    this.button("cut").disabled = !this.socket.connected;
  }

  show(event, args) {
    // walcast appends an offset (a string) to every broadcast for recovery;
    // walcast:offset carries nothing else and only keeps quiet tabs current.
    if (event === "walcast:offset") return;
    this.count++;
    const payload = args[0];
    const { type, row } = describe(event, payload);
    const li = document.createElement("li");
    li.dataset.event = event;
    li.dataset.type = type;
    const head = document.createElement("div");
    const parts = [["time", clock()], ["event", event], [`type ${type}`, type]];
    if (this.awaitingReplay !== null && event === "donation:update" && payload?.data?.id === this.awaitingReplay) {
      li.dataset.tag = "replayed";
      parts.push(["tag", "missed while cut, replayed on recovery"]);
      this.awaitingReplay = null;
      setText($(this.el, "cut-note"), "The donation written while the connection was cut arrived after the reconnect: recovered.", "small note ok");
    }
    for (const [cls, text] of parts) {
      const span = document.createElement("span");
      setText(span, text, cls);
      head.append(span);
    }
    const code = document.createElement("code");
    setText(code, typeof row === "string" ? row : JSON.stringify(row), "row");
    li.append(head, code);
    const list = $(this.el, "events");
    list.prepend(li);
    while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
    setText($(this.el, "count"), `(${this.count} received${this.count > MAX_EVENTS ? `, newest ${MAX_EVENTS} shown` : ""})`);
  }

  resource() {
    return { resourceType: "member", resourceId: this.page.lockMember.id };
  }

  async checkLock() {
    try {
      const st = await this.socket.timeout(5000).emitWithAck("lock:check", this.resource());
      if (!st.error) this.badge(st);
    } catch {
      // the badge stays as it was; lock:update events still drive it
    }
  }

  badge(st) {
    const el = $(this.el, "badge");
    if (!st.isLocked) setText(el, "free", "badge free");
    else if (st.lockedBy === this.cfg.username) setText(el, "you are editing it", "badge mine");
    else setText(el, `being edited by ${st.lockedBy}`, "badge theirs");
  }

  async lock(event) {
    const ack = $(this.el, "ack");
    try {
      const res = await this.socket.timeout(5000).emitWithAck(event, this.resource());
      setText(ack, `${event} → ${JSON.stringify(res)}`, res.success ? "small ack ok" : "small ack bad");
    } catch (err) {
      setText(ack, `${event}: ${err.message}`, "small ack bad");
    }
  }

  // cut closes the transport without a Socket.IO DISCONNECT, so the server
  // keeps the session for the recovery window, then writes a change this
  // pane should see while it is away.
  async cut() {
    const note = $(this.el, "cut-note");
    this.socket.io.reconnectionDelay(CUT_RECONNECT_DELAY_MS);
    this.socket.io.randomizationFactor(0);
    this.socket.io.engine.close();
    setText(note, "Transport closed. Writing a donation for Ann while this pane is away…", "small note warn");
    try {
      const r = await write("donate-ann");
      if (this.socket.connected) {
        setText(note, `Donation ${r.result} was written after the pane was back: nothing to recover. Try again.`, "small note bad");
        return;
      }
      this.awaitingReplay = Number(r.result);
      setText(note, `Donation ${r.result} written while cut; the client reconnects by itself and should get it replayed.`, "small note warn");
    } catch (err) {
      setText(note, `The write failed: ${err.message}`, "small note bad");
    }
  }
}

function sightCell(sight) {
  const td = document.createElement("td");
  const mark = document.createElement("strong");
  setText(mark, sight.sees ? "sees it" : "does not", sight.sees ? "ok" : "bad");
  td.append(mark, document.createTextNode(`: ${sight.why}`));
  return td;
}

function actionRow(action, panes) {
  const tr = document.createElement("tr");
  const tdButton = document.createElement("td");
  const button = document.createElement("button");
  button.type = "button";
  button.dataset.action = action.name;
  setText(button, action.label);
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await write(action.name);
      if (action.name === "restore") {
        const viewer = panes.get("viewer");
        if (!viewer.socket.connected) viewer.socket.connect();
      }
    } catch {
      // shown in the last-write line
    } finally {
      button.disabled = false;
    }
  });
  tdButton.append(button);
  const tdEvent = document.createElement("td");
  const ev = document.createElement("code");
  setText(ev, action.event);
  tdEvent.title = `audience: ${action.audience.join(", ")}`;
  tdEvent.append(ev);
  tr.append(tdButton, tdEvent, sightCell(action.panes.admin), sightCell(action.panes.viewer));
  return tr;
}

async function start() {
  const about = document.getElementById("about");
  if (typeof io !== "function") {
    setText(about, "socket.io-client did not load: run `npm ci --prefix cmd/walcast/demo` in the walcast checkout and restart the demo.", "small bad");
    return;
  }
  const page = await (await fetch("/demo/config")).json();
  setText(about,
    `socket.io-client ${page.clientVersion} from npm · connection state recovery window ${page.recoveryWindow} · ` +
    `lock calls: ${page.lockRate}/s per socket, bursts of ${page.lockBurst} (--lock-rate, --lock-burst); locks last ${page.lockTTL} · ` +
    `flood_rows ${page.floodRows} · write from psql too: psql '${page.databaseURL}'`);
  const panes = new Map(page.panes.map((cfg) => [cfg.id, new Pane(cfg, page)]));
  const tbody = document.getElementById("actions");
  for (const action of page.actions) tbody.append(actionRow(action, panes));
  // Each table's audience, once: the rooms walcast sends its events to.
  const audiences = new Map(page.actions.map((a) => [a.table.replace(/^public\./, ""), a.audience]));
  setText(document.getElementById("audiences"),
    "Audiences (walcast's built-in GraceGiver profile): " +
    [...audiences].map(([table, rooms]) => `${table} → ${rooms.join(", ")}`).join(" · "));
  window.walcastDemo = { page, panes };
}

start().catch((err) => setText(document.getElementById("about"), `The demo page failed to start: ${err.message}`, "small bad"));

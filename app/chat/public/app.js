// Herald chat: the page's script (vanilla JS, no build step).
//
// The protocol is docs/chat-protocol.md. One WebSocket per tab on
// /ws?name=NAME&room=ROOM[&token=TOKEN]; every message is a JSON object with
// a "type". User data only ever reaches the page through textContent.
//
// For tests and debugging the page exposes
//   window.chat = { state, socket, extensions, join(), leave(), send() }
// and mirrors its state on <body> as data attributes:
//   data-view="login|room", data-status="idle|connecting|online|offline",
//   data-room, data-extensions (the negotiated Sec-WebSocket-Extensions),
//   data-error="unauthorized" when the server refused the token.
// Messages are .msg[data-id][data-name], presence notices
// .notice[data-event="join|leave"][data-name], members #members li[data-name]
// (a sorted prefix of the room's names; #member-more tells how many are not
// listed and loads the next page).
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);

  const MAX_NAME = 32;
  const MAX_TEXT = 4000;
  const MAX_FRAME_BYTES = 16 * 1024;  // the server's max_payload_length
  const BACKOFF_BASE_MS = 500;     // first retry after 0.25..0.5 s,
  const BACKOFF_MAX_MS = 10000;    // doubling up to 5..10 s (equal jitter)
  const STABLE_MS = 5000;          // a connection that lived this long resets the backoff
  const GROUP_MS = 5 * 60 * 1000;  // consecutive messages of one sender are grouped
  const MAX_ITEMS = 1000;          // oldest entries are dropped beyond this
  const MEMBER_PAGE = 500;         // names per page of the member list (the server's)
  const NOTICE_MAX_ROOM = 100;     // join/leave notices only in rooms up to this size
  const STORE_NAME = "herald-chat.name";
  const STORE_ROOM = "herald-chat.room";

  const params = new URLSearchParams(location.search);
  const token = params.get("token");

  const state = {
    name: null,
    room: null,
    status: "idle",        // idle | connecting | online | offline
    members: [],           // sorted distinct names: the first ones of the room
    memberCount: 0,        // names in the room (the server's count)
    membersComplete: true, // members holds every name of the room
    memberLimit: MEMBER_PAGE, // most names kept (grows with "show more")
    presenceSeq: null,     // number of the last presence event applied; null: no list yet
    membersAsked: false,   // a members request is on its way
    seen: new Set(),       // message ids already shown
    attempts: 0,           // connection attempts since the last stable one
    leaving: false,        // the user left: no reconnect
    everOnline: false,     // a connection to this room was open before
    outage: false,         // lost the connection and not back yet
    historyPending: false, // this connection's history has not arrived yet
    liveAnchor: null,      // first element added live on this connection
    historySize: null,     // from "welcome"
    lastClose: null,       // { code, reason, wasClean }: how the last open connection closed
    error: null,           // "unauthorized" when the token was refused
    nextRetryAt: 0,
    unread: 0,
  };
  let socket = null;
  let retryTimer = null;
  let countdownTimer = null;

  window.chat = {
    state,
    get socket() { return socket; },
    get extensions() { return socket ? socket.extensions : ""; },
    join: (name, room) => join(name, room),
    leave: () => leave(),
    send: (text) => send(text),
    reconnectNow: () => reconnectNow(),
  };

  // -- helpers ---------------------------------------------------------------

  const body = document.body;
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  };
  const charCount = (s) => [...s].length;
  // eslint-disable-next-line no-control-regex
  const controlChars = /[\u0000-\u001f\u007f-\u009f]/;

  function validName(s, what) {
    if (!s) return `Please enter ${what}.`;
    if (charCount(s) > MAX_NAME) return `${what[0].toUpperCase()}${what.slice(1)} can have at most ${MAX_NAME} characters.`;
    if (controlChars.test(s)) return `${what[0].toUpperCase()}${what.slice(1)} cannot contain control characters.`;
    return null;
  }

  function hue(name) {
    let h = 0;
    for (const c of name) h = (h * 31 + c.codePointAt(0)) >>> 0;
    return h % 360;
  }

  function initials(name) {
    const parts = name.trim().split(/[\s._-]+/).filter(Boolean);
    const chars = parts.length > 1 ? [parts[0], parts[1]].map((p) => [...p][0]) : [...name.trim()].slice(0, 2);
    return chars.join("") || "?";
  }

  function avatar(name) {
    const a = el("span", "avatar", initials(name));
    a.style.background = `hsl(${hue(name)} 55% 52%)`;
    a.setAttribute("aria-hidden", "true");
    return a;
  }

  function formatTime(ms) {
    const d = new Date(typeof ms === "number" ? ms : Date.now());
    const t = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    if (d.toDateString() === new Date().toDateString()) return t;
    return `${d.toLocaleDateString([], { month: "short", day: "numeric" })} ${t}`;
  }

  function timeEl(ms) {
    const d = new Date(typeof ms === "number" ? ms : Date.now());
    const t = el("time", "when", formatTime(ms));
    t.dateTime = d.toISOString();
    t.title = d.toLocaleString();
    return t;
  }

  function roomFromUrl() {
    let h = location.hash.replace(/^#/, "");
    try { h = decodeURIComponent(h); } catch { /* keep it raw */ }
    return h || params.get("room") || "";
  }

  function store(key, value) {
    try { localStorage.setItem(key, value); } catch { /* private mode */ }
  }
  function load(key) {
    try { return localStorage.getItem(key); } catch { return null; }
  }

  function wsUrl() {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    let q = `name=${encodeURIComponent(state.name)}&room=${encodeURIComponent(state.room)}`;
    if (token) q += `&token=${encodeURIComponent(token)}`;
    return `${proto}://${location.host}/ws?${q}`;
  }

  // -- status ----------------------------------------------------------------

  function setStatus(status) {
    state.status = status;
    body.dataset.status = status;
    renderStatus();
    updateComposer();
  }

  function renderStatus() {
    let text;
    switch (state.status) {
      case "online": {
        const n = state.memberCount;
        $("status-text").textContent = "Connected";
        if (n) $("status-text").append(el("span", "detail", ` · ${n} ${n === 1 ? "person" : "people"} here`));
        return;
      }
      case "connecting": text = state.everOnline ? "Reconnecting…" : "Connecting…"; break;
      case "offline": {
        if (state.error === "unauthorized") { text = "Not allowed"; break; }
        const s = Math.max(0, Math.ceil((state.nextRetryAt - Date.now()) / 1000));
        text = retryTimer ? `Offline · retrying in ${s} s` : "Offline";
        break;
      }
      default: text = "Not connected";
    }
    $("status-text").textContent = text;
  }

  function showBanner(text, { retry = false, info = false } = {}) {
    $("banner-text").textContent = text;
    $("retry").hidden = !retry;
    $("banner").classList.toggle("info", info);
    $("banner").hidden = false;
  }
  function hideBanner() { $("banner").hidden = true; }

  function clearTimers() {
    clearTimeout(retryTimer);
    clearInterval(countdownTimer);
    retryTimer = null;
    countdownTimer = null;
  }

  // -- connection ------------------------------------------------------------

  function connect() {
    clearTimers();
    if (socket && socket.readyState <= WebSocket.OPEN) {
      const old = socket;
      socket = null;
      try { old.close(1000, "reconnecting"); } catch { /* already closing */ }
    }
    state.error = null;
    delete body.dataset.error;
    setStatus("connecting");
    if (state.outage) showBanner("Reconnecting…", { info: true });

    let ws;
    try {
      ws = new WebSocket(wsUrl());
    } catch (e) {
      addError(`Cannot connect: ${e.message}`);
      setStatus("offline");
      return;
    }
    socket = ws;
    let opened = false;
    let openedAt = 0;

    ws.onopen = () => {
      if (ws !== socket) return;
      opened = true;
      openedAt = Date.now();
      state.historyPending = true;
      state.liveAnchor = null;
      state.presenceSeq = null;
      state.membersAsked = false;
      body.dataset.extensions = ws.extensions || "";
      hideBanner();
      if (state.outage) addNotice("conn", null, "Reconnected").classList.add("ok");
      state.outage = false;
      state.everOnline = true;
      setStatus("online");
    };

    ws.onmessage = (e) => {
      if (ws !== socket) return;
      let m;
      try { m = JSON.parse(e.data); } catch { return; }
      if (m && typeof m === "object") handle(m);
    };

    ws.onclose = (e) => {
      if (ws !== socket) return;
      // A reconnect attempt that fails (1006) does not hide why the
      // connection was lost.
      if (opened) state.lastClose = { code: e.code, reason: e.reason, wasClean: e.wasClean };
      state.historyPending = false;
      state.liveAnchor = null;
      if (state.leaving) return;
      if (opened && Date.now() - openedAt >= STABLE_MS) state.attempts = 0;
      if (opened) {
        state.outage = true;
        addNotice("conn", null, closeText(e));
      }
      if (opened) scheduleReconnect();
      else probeRefusal().then((refused) => {
        if (ws !== socket || state.leaving) return;
        if (refused) unauthorized();
        else scheduleReconnect();
      });
    };
  }

  function closeText(e) {
    if (e.code === 1001) return "The server went away (restarting?) — reconnecting…";
    if (e.code === 1000 || e.code === 1005 || e.code === 1006) return "Connection lost — reconnecting…";
    const why = e.reason ? `: ${e.reason}` : "";
    return `Closed by the server (${e.code}${why}) — reconnecting…`;
  }

  // A WebSocket that fails before opening tells the page nothing about why.
  // Ask the same URL over plain HTTP: the server answers 401 before any
  // upgrade when the token is missing or wrong.
  async function probeRefusal() {
    try {
      const r = await fetch(wsUrl().replace(/^ws/, "http"), { cache: "no-store" });
      return r.status === 401;
    } catch {
      return false;  // the server is down: retry with backoff
    }
  }

  function unauthorized() {
    clearTimers();
    state.error = "unauthorized";
    body.dataset.error = "unauthorized";
    setStatus("offline");
    showBanner(token
      ? "The server refused this chat link's token (401). Ask for a new invitation link."
      : "This chat server needs an invitation link with a token (401). Open the link you were given.",
      { retry: true });
  }

  function scheduleReconnect() {
    clearTimers();
    const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.min(state.attempts, 10));
    const delay = Math.round(cap / 2 + Math.random() * (cap / 2));
    state.attempts += 1;
    state.nextRetryAt = Date.now() + delay;
    retryTimer = setTimeout(connect, delay);
    countdownTimer = setInterval(() => { renderStatus(); updateBannerCountdown(); }, 500);
    setStatus("offline");
    updateBannerCountdown();
  }

  function updateBannerCountdown() {
    if (!retryTimer) return;
    const s = Math.max(0, Math.ceil((state.nextRetryAt - Date.now()) / 1000));
    showBanner(`Can't reach the server. Reconnecting in ${s} s…`, { retry: true });
  }

  function reconnectNow() {
    if (!state.room || state.leaving) return;
    if (state.status === "online" || state.status === "connecting") return;
    connect();
  }

  // -- server messages -------------------------------------------------------

  function handle(m) {
    switch (m.type) {
      case "welcome":
        if (typeof m.history === "number") state.historySize = m.history;
        break;
      case "join":
      case "leave":
        presence(m);
        break;
      case "members":
        onMembers(m);
        break;
      case "history":
        onHistory(Array.isArray(m.messages) ? m.messages : []);
        break;
      case "message":
        addMessage(m, false);
        break;
      case "error":
        addError(String(m.error ?? "error"));
        break;
      default:
        break;  // newer servers may send more: ignore
    }
  }

  // The member list is a sorted prefix of the room's names (the first page
  // the server sends on joining, more pages on request), kept up to date
  // from join and leave events; events numbered at or below the page's
  // "seq" are already in it. The count comes from the server.
  function onMembers(m) {
    if (!Array.isArray(m.members)) return;
    const page = m.members.filter((x) => typeof x === "string");
    if (typeof m.after === "string") {
      // A later page: only when it continues the list we hold.
      if (state.presenceSeq === null) return;
      state.membersAsked = false;
      const at = state.members.length ? state.members[state.members.length - 1] : "";
      if (m.after !== at) return;
      state.members = [...state.members, ...page.filter((x) => x > at)];
      state.memberLimit = Math.max(state.memberLimit, state.members.length);
    } else {
      state.membersAsked = false;
      state.members = [...new Set(page)].sort();
      state.memberLimit = Math.max(MEMBER_PAGE, state.members.length);
      if (typeof m.seq === "number" && (state.presenceSeq === null || m.seq > state.presenceSeq))
        state.presenceSeq = m.seq;
      else if (state.presenceSeq === null) state.presenceSeq = 0;
    }
    state.membersComplete = m.more !== true;
    if (typeof m.count === "number") state.memberCount = m.count;
    renderMembers();
  }

  const before = (a, b) => (a < b ? -1 : a > b ? 1 : 0);

  function insertMember(name) {
    const list = state.members;
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (before(list[mid], name) < 0) lo = mid + 1; else hi = mid;
    }
    if (list[lo] === name) return;
    // Past the end of an incomplete list: not ours to show.
    if (lo === list.length && !state.membersComplete) return;
    list.splice(lo, 0, name);
    if (list.length > state.memberLimit) {
      list.pop();
      state.membersComplete = false;
    }
  }

  function removeMember(name) {
    const i = state.members.indexOf(name);
    if (i >= 0) state.members.splice(i, 1);
    // A list emptied by leaves asks for the first page again.
    if (!state.membersComplete && state.members.length < MEMBER_PAGE / 2) askMembers();
  }

  function askMembers(after) {
    if (state.membersAsked || !socket || socket.readyState !== WebSocket.OPEN) return;
    state.membersAsked = true;
    socket.send(JSON.stringify(after ? { type: "members", after } : { type: "members" }));
  }

  // join/leave: the name, that name's open connections and the room's
  // count after the event. "X joined" for X's first connection, "X left"
  // for its last; notices only in rooms small enough to read them.
  function presence(m) {
    if (state.presenceSeq === null) return;  // before our first page
    if (typeof m.seq === "number") {
      if (m.seq <= state.presenceSeq) return;  // already in the page
      state.presenceSeq = m.seq;
    }
    const name = typeof m.name === "string" ? m.name : "";
    const tabs = typeof m.connections === "number" ? m.connections : (m.type === "join" ? 1 : 0);
    if (typeof m.count === "number") state.memberCount = m.count;
    const arrived = m.type === "join" && tabs === 1;
    const gone = m.type === "leave" && tabs === 0;
    if (arrived && name) insertMember(name);
    if (gone && name) removeMember(name);
    renderMembers();
    const small = state.memberCount <= NOTICE_MAX_ROOM;
    if (arrived && name && (small || name === state.name)) addNotice("join", name, null, m.time);
    if (gone && name && small) addNotice("leave", name, null, m.time);
  }

  function setMembers(list) {
    state.members = [...new Set(list)].sort();
    state.memberCount = state.members.length;
    state.membersComplete = true;
    state.memberLimit = MEMBER_PAGE;
    renderMembers();
  }

  // Redrawn at most once a frame: a big room sends many events at once.
  let membersFrame = 0;
  function renderMembers() {
    if (membersFrame) return;
    membersFrame = requestAnimationFrame(() => {
      membersFrame = 0;
      drawMembers();
    });
  }

  function drawMembers() {
    const ul = $("members");
    ul.replaceChildren(...state.members.map((name) => {
      const li = el("li");
      li.dataset.name = name;
      li.title = name;
      li.append(avatar(name), el("span", "member-name", name));
      if (name === state.name) li.append(el("span", "you", "you"));
      return li;
    }));
    const rest = Math.max(0, state.memberCount - state.members.length);
    const more = $("member-more");
    more.hidden = rest === 0;
    more.dataset.rest = String(rest);
    $("member-more-text").textContent = `and ${rest.toLocaleString()} more`;
    $("member-more-button").hidden = state.membersComplete;
    const count = state.memberCount.toLocaleString();
    $("member-count").textContent = count;
    $("member-count-badge").textContent = count;
    renderStatus();
  }
  function onHistory(messages) {
    const anchor = state.liveAnchor && state.liveAnchor.isConnected ? state.liveAnchor : null;
    const list = $("messages");
    const stick = nearBottom();
    for (const m of messages) {
      if (!m || typeof m !== "object") continue;
      const node = messageNode(m);
      if (!node) continue;
      node.dataset.history = "1";
      list.insertBefore(node, anchor);
    }
    state.historyPending = false;
    state.liveAnchor = null;
    regroupAll();
    trim();
    updateEmpty();
    if (stick || messages.length) scrollToBottom();
  }

  // -- rendering -------------------------------------------------------------

  // De-duplication key: the id, qualified by the sender and the server time
  // so that a restarted server that counts its ids from the start again
  // cannot hide new messages behind old ones.
  const seenKey = (m) => `${m.id}\u0000${m.time}\u0000${m.name}`;

  function messageNode(m) {
    const id = m.id != null ? String(m.id) : null;
    if (id) {
      const key = seenKey(m);
      if (state.seen.has(key)) return null;
      state.seen.add(key);
    }
    const name = typeof m.name === "string" ? m.name : "?";
    const server = m.server === true;
    const mine = !server && name === state.name;
    const node = el("div", "msg");
    if (mine) node.classList.add("mine");
    if (server) node.classList.add("server");
    if (id) {
      node.dataset.id = id;
      node.dataset.key = seenKey(m);
    }
    node.dataset.name = name;
    if (server) node.dataset.server = "true";
    node.dataset.time = String(typeof m.time === "number" ? m.time : Date.now());

    const bubble = el("div", "bubble");
    const meta = el("div", "meta");
    meta.append(el("span", "who", name));
    if (server) meta.append(el("span", "badge", "server"));
    meta.append(timeEl(m.time));
    const text = el("div", "text", typeof m.text === "string" ? m.text : "");
    bubble.title = formatTime(m.time);
    bubble.append(meta, text);
    if (!mine && !server) {
      meta.querySelector(".who").style.color = `hsl(${hue(name)} 55% 40%)`;
    }
    node.append(avatar(name), bubble);
    return node;
  }

  function addMessage(m, fromHistory) {
    const node = messageNode(m);
    if (!node) return;
    if (fromHistory) node.dataset.history = "1";
    const mine = node.classList.contains("mine");
    append(node, { force: mine });
    if (!mine && document.hidden) {
      state.unread += 1;
      updateTitle();
    }
  }

  function addNotice(kind, name, text, time) {
    const node = el("div", `notice ${kind}`);
    node.dataset.event = kind;
    if (name != null) {
      node.dataset.name = name;
      const who = el("b", null, name === state.name ? "You" : name);
      node.append(who, document.createTextNode(kind === "join"
        ? ` joined #${state.room}` : " left"));
    } else {
      node.textContent = text;
    }
    if (typeof time === "number") node.append(timeEl(time));
    append(node);
    return node;
  }

  function addError(text) {
    const node = el("div", "error-line", text);
    node.dataset.event = "error";
    node.setAttribute("role", "alert");
    append(node, { force: true });
  }

  function append(node, { force = false } = {}) {
    const list = $("messages");
    const stick = force || nearBottom();
    list.append(node);
    if (state.historyPending && !state.liveAnchor) state.liveAnchor = node;
    group(node);
    trim();
    updateEmpty();
    if (stick) scrollToBottom();
    else $("jump").hidden = false;
  }

  function canGroup(a, b) {
    return a && b && a.classList.contains("msg") && b.classList.contains("msg")
      && !a.classList.contains("server") && !b.classList.contains("server")
      && a.dataset.name === b.dataset.name
      && Math.abs(Number(b.dataset.time) - Number(a.dataset.time)) < GROUP_MS;
  }

  function group(node) {
    if (!node.classList.contains("msg")) return;
    node.classList.toggle("cont", canGroup(node.previousElementSibling, node));
  }

  function regroupAll() {
    for (const node of $("messages").querySelectorAll(".msg")) group(node);
  }

  function trim() {
    const list = $("messages");
    while (list.childElementCount > MAX_ITEMS + 1) {
      const first = list.firstElementChild.id === "empty"
        ? list.firstElementChild.nextElementSibling : list.firstElementChild;
      if (first.classList.contains("msg") && first.dataset.key) state.seen.delete(first.dataset.key);
      first.remove();
    }
  }

  function updateEmpty() {
    const list = $("messages");
    let empty = $("empty");
    const hasMessages = !!list.querySelector(".msg");
    if (hasMessages || state.historyPending) {
      if (empty) empty.remove();
      return;
    }
    if (!empty) {
      empty = el("div", "empty");
      empty.id = "empty";
      empty.append(el("b", null, "No messages yet"), document.createTextNode("Say hello to get the conversation going."));
      list.prepend(empty);
    }
  }

  function nearBottom() {
    const list = $("messages");
    return list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  }

  function scrollToBottom() {
    const list = $("messages");
    list.scrollTop = list.scrollHeight;
    $("jump").hidden = true;
  }

  function updateTitle() {
    const base = state.room ? `#${state.room} · Herald chat` : "Herald chat";
    document.title = state.unread ? `(${state.unread}) ${base}` : base;
  }

  // -- composer --------------------------------------------------------------

  function updateComposer() {
    const online = state.status === "online";
    const text = $("text").value;
    $("send").disabled = !online || !text.trim();
    $("text").placeholder = online ? `Message #${state.room ?? ""}` : "Waiting for the connection…";
  }

  function autosize() {
    const t = $("text");
    t.style.height = "auto";
    t.style.height = `${Math.min(t.scrollHeight + 2, 160)}px`;
  }

  function send(text) {
    if (typeof text !== "string" || !text.trim()) return false;
    if (charCount(text) > MAX_TEXT) {
      addError(`Messages can have at most ${MAX_TEXT} characters.`);
      return false;
    }
    if (!socket || socket.readyState !== WebSocket.OPEN) return false;
    const frame = JSON.stringify({ type: "message", text });
    // The server closes the connection (1009) for messages over 16 KiB.
    if (new TextEncoder().encode(frame).length > MAX_FRAME_BYTES) {
      addError("This message is too long to send.");
      return false;
    }
    socket.send(frame);
    return true;
  }

  // -- views -----------------------------------------------------------------

  function showView(view) {
    body.dataset.view = view;
    $("login-view").hidden = view !== "login";
    $("room-view").hidden = view !== "room";
  }

  function join(name, room) {
    name = String(name ?? "").trim();
    room = String(room ?? "").trim() || "general";
    const problem = validName(name, "a name") || validName(room, "a room");
    if (problem) {
      $("login-error").textContent = problem;
      $("login-error").hidden = false;
      return false;
    }
    $("login-error").hidden = true;
    store(STORE_NAME, name);
    store(STORE_ROOM, room);

    clearTimers();
    state.name = name;
    state.room = room;
    state.leaving = false;
    state.everOnline = false;
    state.outage = false;
    state.attempts = 0;
    state.seen.clear();
    state.unread = 0;
    state.error = null;
    $("messages").replaceChildren();
    setMembers([]);
    hideBanner();
    body.dataset.room = room;
    $("room-title").textContent = room;
    updateTitle();
    const hash = `#${encodeURIComponent(room)}`;
    if (location.hash !== hash) window.history.replaceState(null, "", `${location.pathname}${location.search}${hash}`);
    showView("room");
    connect();
    $("text").focus();
    return true;
  }

  function leave() {
    state.leaving = true;
    clearTimers();
    if (socket) {
      const s = socket;
      try { s.close(1000, "left the room"); } catch { /* already closed */ }
    }
    state.outage = false;
    setMembers([]);
    delete body.dataset.room;
    delete body.dataset.error;
    delete body.dataset.extensions;
    body.classList.remove("sidebar-open");
    setStatus("idle");
    showView("login");
    state.room = null;
    updateTitle();
    $("room").value = load(STORE_ROOM) || "general";
    $("join").focus();
  }

  // -- wiring ----------------------------------------------------------------

  function init() {
    const room = roomFromUrl();
    $("name").value = load(STORE_NAME) || "";
    $("room").value = room || load(STORE_ROOM) || "general";
    showView("login");
    setStatus("idle");
    ($("name").value ? $("join") : $("name")).focus();

    $("login").addEventListener("submit", (e) => {
      e.preventDefault();
      join($("name").value, $("room").value);
    });

    $("composer").addEventListener("submit", (e) => {
      e.preventDefault();
      if (send($("text").value)) {
        $("text").value = "";
        autosize();
        updateComposer();
      }
      $("text").focus();
    });
    $("text").addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        $("composer").requestSubmit();
      }
    });
    $("text").addEventListener("input", () => { autosize(); updateComposer(); });

    $("leave").addEventListener("click", leave);
    $("retry").addEventListener("click", () => {
      if (state.error === "unauthorized") state.attempts = 0;
      if (state.status === "offline") connect();
    });
    $("jump").addEventListener("click", scrollToBottom);
    $("member-more-button").addEventListener("click", () => {
      const last = state.members[state.members.length - 1];
      if (last) askMembers(last);
    });
    $("messages").addEventListener("scroll", () => { if (nearBottom()) $("jump").hidden = true; });

    const toggleSidebar = (open) => {
      body.classList.toggle("sidebar-open", open);
      $("members-toggle").setAttribute("aria-expanded", String(open));
    };
    $("members-toggle").addEventListener("click", () => toggleSidebar(!body.classList.contains("sidebar-open")));
    $("scrim").addEventListener("click", () => toggleSidebar(false));
    document.addEventListener("keydown", (e) => { if (e.key === "Escape") toggleSidebar(false); });

    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && state.unread) {
        state.unread = 0;
        updateTitle();
      }
    });
    // Back on the network: don't wait for the backoff timer.
    window.addEventListener("online", reconnectNow);

    window.addEventListener("hashchange", () => {
      const r = roomFromUrl();
      if (!r) return;
      if (body.dataset.view === "login") $("room").value = r;
      else if (r !== state.room && state.name) join(state.name, r);
    });
  }

  init();
})();

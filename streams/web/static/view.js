// The browser view: one WebSocket to /view/ws for every tile. It says which streams are on
// screen ({"watch": [ids]}: only those get pictures made, in the pipeline), gets every
// stream's figures as JSON text each second and pictures as binary messages: a 2-byte
// big-endian header length, the header JSON, the JPEG. No build step, no libraries.
"use strict";

const grid = document.getElementById("grid");
const summary = document.getElementById("summary");
const large = document.getElementById("large");
const largePicture = document.getElementById("large-picture");
const largeCaption = document.getElementById("large-caption");
const tiles = new Map(); // stream id -> {root, img, fields, url, visible}
let socket = null;
let enlarged = null; // the stream shown large, or null
let sentWatch = "";

function text(el, value) { if (el.textContent !== value) el.textContent = value; }
function ms(value) { return value == null ? "-" : value.toFixed(0) + " ms"; }

function tile(id) {
  let t = tiles.get(id);
  if (t) return t;
  const root = document.createElement("section");
  root.className = "tile";
  root.dataset.stream = id;
  root.innerHTML =
    '<div class="picture"><span class="waiting">no picture yet</span></div>' +
    '<div class="info"><span class="name"></span><span class="state"></span>' +
    '<span class="fps"></span><span class="p50"></span><span class="p99"></span>' +
    '<span class="drops"></span></div><div class="reason"></div>';
  const img = document.createElement("img");
  img.alt = id;
  img.hidden = true;
  root.querySelector(".picture").appendChild(img);
  root.querySelector(".name").textContent = id;
  root.addEventListener("click", () => enlarge(id));
  t = { root, img, url: null, visible: false, fields: {} };
  for (const k of ["state", "fps", "p50", "p99", "drops", "reason"]) {
    t.fields[k] = root.querySelector("." + k);
  }
  tiles.set(id, t);
  insertSorted(root, id);
  observer.observe(root);
  return t;
}

function insertSorted(root, id) {
  for (const other of grid.children) {
    if (other.dataset.stream > id) { grid.insertBefore(root, other); return; }
  }
  grid.appendChild(root);
}

const observer = new IntersectionObserver((entries) => {
  for (const entry of entries) {
    const t = tiles.get(entry.target.dataset.stream);
    if (t) t.visible = entry.isIntersecting;
  }
  sendWatch();
});

function figures(streams) {
  let live = 0;
  for (const s of streams) {
    const t = tile(s.stream);
    if (s.state === "live") live += 1;
    text(t.fields.state, s.state);
    t.fields.state.className = "state " + s.state;
    text(t.fields.fps, (s.fps || 0).toFixed(1) + " fps");
    text(t.fields.p50, "p50 " + ms(s.p50_ms));
    text(t.fields.p99, "p99 " + ms(s.p99_ms));
    text(t.fields.drops, (s.dropped || 0) + " drops");
    text(t.fields.reason, s.state === "live" ? "" : s.reason || "");
    if (enlarged === s.stream) {
      text(largeCaption, `${s.stream} - ${s.state} - ${(s.fps || 0).toFixed(1)} fps - ` +
        `p50 ${ms(s.p50_ms)} - p99 ${ms(s.p99_ms)} - ${s.dropped || 0} drops`);
    }
  }
  text(summary, `${streams.length} streams, ${live} live`);
  document.documentElement.style.setProperty(
    "--tile-min", streams.length > 9 ? "240px" : "320px");
}

function picture(data) {
  const view = new DataView(data);
  const length = view.getUint16(0);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(data, 2, length)));
  const blob = new Blob([new Uint8Array(data, 2 + length)], { type: "image/jpeg" });
  const url = URL.createObjectURL(blob);
  const t = tile(header.stream);
  if (t.url) URL.revokeObjectURL(t.url);
  t.url = url;
  t.img.src = url;
  t.img.dataset.seq = header.seq;
  t.img.dataset.detections = header.detections;
  if (t.img.hidden) {
    t.img.hidden = false;
    const waiting = t.root.querySelector(".waiting");
    if (waiting) waiting.remove();
  }
  if (enlarged === header.stream) largePicture.src = url;
}

function watchList() {
  if (document.hidden) return [];
  if (enlarged !== null) return [enlarged];
  return [...tiles.entries()].filter(([, t]) => t.visible).map(([id]) => id).sort();
}

function sendWatch() {
  const wanted = JSON.stringify({ watch: watchList() });
  if (socket && socket.readyState === WebSocket.OPEN && wanted !== sentWatch) {
    socket.send(wanted);
    sentWatch = wanted;
  }
}

function enlarge(id) {
  enlarged = id;
  const t = tiles.get(id);
  if (t && t.url) largePicture.src = t.url;
  largePicture.alt = id;
  large.hidden = false;
  sendWatch();
}

function shrink() {
  enlarged = null;
  large.hidden = true;
  sendWatch();
}

large.addEventListener("click", shrink);
document.addEventListener("keydown", (e) => { if (e.key === "Escape") shrink(); });
document.addEventListener("visibilitychange", sendWatch);

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  socket = new WebSocket(`${scheme}//${location.host}/view/ws`);
  socket.binaryType = "arraybuffer";
  socket.onopen = () => { sentWatch = ""; sendWatch(); };
  socket.onmessage = (event) => {
    if (typeof event.data === "string") {
      const message = JSON.parse(event.data);
      if (message.type === "streams") { figures(message.streams); sendWatch(); }
    } else {
      picture(event.data);
    }
  };
  socket.onclose = () => {
    text(summary, "disconnected; reconnecting...");
    setTimeout(connect, 1000);
  };
}

connect();

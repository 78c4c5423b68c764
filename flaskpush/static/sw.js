/* flaskpush service worker, served at /sw.js so its scope can be /.
 *
 * Shows each push as a notification, focuses or opens its url on a click, and
 * when the push service replaces a subscription, subscribes again and tells
 * the server - over a WebSocket of its own, since the page's socket is out of
 * reach here (the session cookie goes with it). Register it as
 * /sw.js?ws=/path/to/ws if the WebSocket is not at /ws.
 */
"use strict";

var WS_URL = new URL(new URL(self.location.href).searchParams.get("ws") || "/ws", self.location.href);
WS_URL.protocol = WS_URL.protocol === "https:" ? "wss:" : "ws:";

self.addEventListener("install", function () {
  self.skipWaiting();
});

self.addEventListener("activate", function (event) {
  event.waitUntil(self.clients.claim());
});

function payloadOf(event) {
  if (!event.data) return {};
  try {
    var payload = event.data.json();
    return payload && typeof payload === "object" ? payload : { body: String(payload) };
  } catch (e) {
    return { body: event.data.text() };
  }
}

self.addEventListener("push", function (event) {
  var payload = payloadOf(event);
  var options = { body: payload.body || "", data: { url: payload.url || "/" } };
  if (payload.icon) options.icon = payload.icon;
  if (payload.tag) options.tag = payload.tag;
  event.waitUntil(self.registration.showNotification(payload.title || "Notification", options));
});

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  var url = new URL((event.notification.data && event.notification.data.url) || "/", self.location.origin).href;
  event.waitUntil(
    self.clients.matchAll({ type: "window", includeUncontrolled: true }).then(function (windows) {
      var open = windows.find(function (w) { return w.url === url; });
      return open ? open.focus() : self.clients.openWindow(url);
    })
  );
});

/* Send commands on a short-lived socket; resolve when the last one is answered. */
function tellServer(messages) {
  return new Promise(function (resolve, reject) {
    var ws = new WebSocket(WS_URL.href);
    var replies = [];
    ws.onopen = function () {
      messages.forEach(function (m) { ws.send(JSON.stringify(m)); });
    };
    ws.onmessage = function (event) {
      replies.push(JSON.parse(event.data));
      if (replies.length === messages.length) {
        ws.close();
        var failed = replies.find(function (r) { return r.cmd === "error"; });
        if (failed) reject(new Error(failed.val));
        else resolve(replies);
      }
    };
    ws.onclose = function () { reject(new Error("The server closed the WebSocket")); };
  });
}

function serverKey() {
  return tellServer([{ cmd: "push_get_vapid" }]).then(function (replies) {
    var b64 = replies[0].key.replace(/-/g, "+").replace(/_/g, "/");
    return Uint8Array.from(atob(b64 + "===".slice((b64.length + 3) % 4)), function (c) {
      return c.charCodeAt(0);
    });
  });
}

self.addEventListener("pushsubscriptionchange", function (event) {
  var old = event.oldSubscription;
  var key = old && old.options.applicationServerKey;
  event.waitUntil(
    (key ? Promise.resolve(key) : serverKey()).then(function (applicationServerKey) {
      return event.newSubscription ||
        self.registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: applicationServerKey });
    }).then(function (sub) {
      var messages = [{ cmd: "push_subscribe", subscription: sub.toJSON() }];
      if (old && old.endpoint !== sub.endpoint) messages.push({ cmd: "push_unsubscribe", endpoint: old.endpoint });
      return tellServer(messages);
    })
  );
});

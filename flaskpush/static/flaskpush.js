/* flaskpush client: defines window.flaskpush and nothing else.
 *
 * One WebSocket to the server, reopened with backoff when it drops and after
 * a sign-in or sign-out. Replies carry no id, but the server answers each
 * socket's frames one by one in order, so the n-th reply belongs to the n-th
 * request still waiting.
 *
 * A host page can include this file as it is. Optional attributes on its
 * <script> tag: data-ws-url (default /ws), data-sw-url (default /sw.js),
 * data-sw-scope (default /); or set flaskpush.config and call
 * flaskpush.reconnect(). If the page has the flaskpush hooks
 * (#flaskpush-state, #flaskpush-enable, #flaskpush-disable, and for the
 * user's other browsers #flaskpush-devices around a #flaskpush-device-list)
 * they are wired up.
 */
(function () {
  "use strict";

  var dataset = (document.currentScript && document.currentScript.dataset) || {};
  var config = {
    wsUrl: dataset.wsUrl || "/ws",
    swUrl: dataset.swUrl || "/sw.js",
    swScope: dataset.swScope || "/",
    minDelay: 500,
    maxDelay: 30000,
  };
  var NOT_AUTHENTICATED = "Not authenticated";

  /* ---- the socket ------------------------------------------------------ */

  var ws = null;
  var outbox = []; // requests made while the socket was not open
  var waiting = []; // requests sent, in order, each awaiting its reply
  var delay = config.minDelay;
  var retryTimer = null;
  var onOpen = null; // set below: re-sends the subscription on every open

  function socketUrl() {
    var url = new URL(config.wsUrl, location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return url.href;
  }

  function connect() {
    clearTimeout(retryTimer);
    retryTimer = null;
    var socket = new WebSocket(socketUrl());
    ws = socket;
    socket.onopen = function () {
      delay = config.minDelay;
      outbox.splice(0).forEach(transmit);
      onOpen();
    };
    socket.onmessage = function (event) {
      if (ws !== socket) return; // a late reply on a socket being replaced
      var entry = waiting.shift();
      if (entry) settle(entry, event.data);
    };
    socket.onclose = function () {
      if (ws !== socket) return; // replaced on purpose by reconnect()
      ws = null;
      failWaiting("Connection lost");
      var wait = delay * (0.5 + Math.random() / 2);
      delay = Math.min(delay * 2, config.maxDelay);
      retryTimer = setTimeout(connect, wait);
    };
  }

  function transmit(entry) {
    waiting.push(entry);
    ws.send(JSON.stringify(entry.message));
  }

  function settle(entry, text) {
    var reply;
    try {
      reply = JSON.parse(text);
    } catch (e) {
      entry.reject(new Error("Unreadable reply from the server"));
      return;
    }
    if (reply.cmd === "error") entry.reject(new Error(reply.val));
    else entry.resolve(reply);
  }

  function failWaiting(reason) {
    waiting.splice(0).forEach(function (entry) {
      entry.reject(new Error(reason));
    });
  }

  /* Send one command; resolve to its success reply, reject with Error(val). */
  function request(message) {
    return new Promise(function (resolve, reject) {
      var entry = { message: message, resolve: resolve, reject: reject };
      if (ws && ws.readyState === WebSocket.OPEN) transmit(entry);
      else outbox.push(entry);
      if (!ws) connect();
    });
  }

  /* Close the socket and open a new one, which carries the current cookie. */
  function reopen() {
    var old = ws;
    ws = null;
    failWaiting("Connection reopened");
    if (old) old.close();
    connect();
  }

  /* Like request(), but a socket opened before a sign-in is reopened once. */
  function call(message) {
    return request(message).catch(function (error) {
      if (error.message !== NOT_AUTHENTICATED) throw error;
      reopen();
      return request(message);
    });
  }

  /* ---- push ------------------------------------------------------------ */

  function supported() {
    return "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
  }

  function b64urlToBytes(text) {
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    var raw = atob(b64 + "===".slice((b64.length + 3) % 4));
    return Uint8Array.from(raw, function (c) {
      return c.charCodeAt(0);
    });
  }

  function sameBytes(buffer, bytes) {
    if (!buffer) return false;
    var mine = new Uint8Array(buffer);
    return mine.length === bytes.length && mine.every(function (b, i) {
      return b === bytes[i];
    });
  }

  function serverKey(send) {
    return send({ cmd: "push_get_vapid" }).then(function (reply) {
      return b64urlToBytes(reply.key);
    });
  }

  function registration() {
    return navigator.serviceWorker.getRegistration(config.swScope);
  }

  /* Register the service worker; resolve once it is active (subscribe needs that). */
  function activeRegistration() {
    return navigator.serviceWorker.register(config.swUrl, { scope: config.swScope }).then(function (reg) {
      var worker = reg.installing || reg.waiting;
      if (reg.active || !worker) return reg;
      return new Promise(function (resolve, reject) {
        worker.addEventListener("statechange", function () {
          if (worker.state === "activated") resolve(reg);
          if (worker.state === "redundant") reject(new Error("The service worker failed to install"));
        });
      });
    });
  }

  /* The browser's subscription, made anew if it was made with another
   * server key (the server's key changed): the old one can never be used. */
  function subscriptionFor(reg, key, send) {
    return reg.pushManager.getSubscription().then(function (sub) {
      if (sub && sameBytes(sub.options.applicationServerKey, key)) return sub;
      var renew = reg.pushManager.subscribe.bind(reg.pushManager, { userVisibleOnly: true, applicationServerKey: key });
      if (!sub) return renew();
      var endpoint = sub.endpoint;
      return sub.unsubscribe().then(function () {
        send({ cmd: "push_unsubscribe", endpoint: endpoint }).catch(function () {});
        return renew();
      });
    });
  }

  function report(sub, send) {
    return send({ cmd: "push_subscribe", subscription: sub.toJSON() }).then(function () {
      return sub.toJSON();
    });
  }

  function enable() {
    if (!supported()) return Promise.reject(new Error("This browser does not support push notifications"));
    return Notification.requestPermission().then(function (permission) {
      if (permission !== "granted") throw new Error("Notification permission was not granted");
      return Promise.all([activeRegistration(), serverKey(call)]);
    }).then(function (both) {
      return subscriptionFor(both[0], both[1], call);
    }).then(function (sub) {
      return report(sub, call);
    }).then(changed);
  }

  function disable() {
    if (!supported()) return Promise.resolve();
    return registration().then(function (reg) {
      return reg && reg.pushManager.getSubscription();
    }).then(function (sub) {
      if (!sub) return;
      var endpoint = sub.endpoint;
      return sub.unsubscribe().then(function () {
        return call({ cmd: "push_unsubscribe", endpoint: endpoint });
      });
    }).then(function () {
      changed();
    });
  }

  function status() {
    if (!supported()) {
      var permission = "Notification" in window ? Notification.permission : "denied";
      return Promise.resolve({ supported: false, permission: permission, enabled: false, endpoint: null });
    }
    return registration().then(function (reg) {
      return reg ? reg.pushManager.getSubscription() : null;
    }).then(function (sub) {
      var enabled = Boolean(sub) && Notification.permission === "granted";
      return {
        supported: true,
        permission: Notification.permission,
        enabled: enabled,
        endpoint: enabled ? sub.endpoint : null,
      };
    });
  }

  /* On every (re)open: hand the server the browser's subscription again.
   * A sign-out removed it on the server; a new sign-in must bring it back.
   * Signed out, the server answers "Not authenticated", which is expected. */
  function resend() {
    if (!supported() || Notification.permission !== "granted") return Promise.resolve();
    return registration().then(function (reg) {
      if (!reg) return;
      return reg.pushManager.getSubscription().then(function (sub) {
        if (!sub) return;
        return serverKey(request).then(function (key) {
          return subscriptionFor(reg, key, request);
        }).then(function (current) {
          return report(current, request);
        });
      });
    }).catch(function (error) {
      if (error.message !== NOT_AUTHENTICATED) console.warn("flaskpush:", error.message);
    }).then(changed);
  }

  /* ---- this user's devices -------------------------------------------- */

  /* The user's subscriptions, one per browser; this browser's has current: true. */
  function devices() {
    return status().then(function (s) {
      var message = { cmd: "push_list_devices" };
      if (s.endpoint) message.endpoint = s.endpoint;
      return call(message);
    }).then(function (reply) {
      return reply.devices;
    });
  }

  /* Stop sending to another browser of this user (its id from devices()). */
  function removeDevice(id) {
    return call({ cmd: "push_remove_device", id: id }).then(function () {
      changed();
    });
  }

  /* ---- reconnecting on purpose ----------------------------------------- */

  var reconnecting = []; // resolvers of reconnect() calls awaiting the next open

  onOpen = function () {
    var done = resend();
    reconnecting.splice(0).forEach(function (resolve) {
      resolve(done);
    });
  };

  /* Call after a sign-in or sign-out made without navigation (a fetch to
   * /login, /register or /logout); resolves once the subscription was re-sent. */
  function reconnect() {
    return new Promise(function (resolve) {
      reconnecting.push(resolve);
      reopen();
    });
  }

  /* ---- the page's hooks, when present ---------------------------------- */

  var listeners = [];

  function changed(value) {
    listeners.forEach(function (listener) {
      listener();
    });
    return value;
  }

  function stateOf(s) {
    if (!s.supported) return "unsupported";
    if (s.permission === "denied") return "denied";
    return s.enabled ? "enabled" : "disabled";
  }

  var STATE_TEXT = {
    unsupported: "This browser cannot receive push notifications.",
    denied: "Notifications are blocked for this site. Allow them in the browser's site settings to turn them on.",
    disabled: "Notifications are off for this browser.",
    enabled: "Notifications are on for this browser.",
  };

  /* "Firefox on Linux" from a User-Agent string: enough to tell devices apart. */
  function deviceName(userAgent) {
    var find = function (pairs) {
      var hit = pairs.find(function (pair) { return pair[0].test(userAgent); });
      return hit && hit[1];
    };
    var browser = find([[/Edg\//, "Edge"], [/OPR\//, "Opera"], [/Firefox\//, "Firefox"],
      [/Chrom(e|ium)\//, "Chrome"], [/Safari\//, "Safari"]]);
    var system = find([[/Android/, "Android"], [/iPhone|iPad/, "iOS"], [/Windows/, "Windows"],
      [/Mac OS X/, "macOS"], [/CrOS/, "ChromeOS"], [/Linux/, "Linux"]]);
    if (browser && system) return browser + " on " + system;
    return browser || system || "Unknown browser";
  }

  function day(iso) {
    return new Date(iso).toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" });
  }

  function element(tag, className, text) {
    var el = document.createElement(tag);
    if (className) el.className = className;
    if (text) el.textContent = text;
    return el;
  }

  /* One <li> per device: its name and details, and a Remove button unless it is this browser. */
  function deviceItem(device, remove) {
    var item = element("li", "device");
    item.dataset.deviceId = device.id;
    var about = element("div", "about");
    var name = element("span", "name", deviceName(device.user_agent || ""));
    if (device.current) name.appendChild(element("span", "tag", "This browser"));
    var details = element("span", "details");
    details.append(element("span", "", "via " + device.push_service),
      element("span", "", "added " + day(device.created_at)));
    if (device.last_success_at) details.append(element("span", "", "last push " + day(device.last_success_at)));
    about.append(name, details);
    item.appendChild(about);
    if (!device.current) {
      var button = element("button", "remove", "Remove");
      button.type = "button";
      button.setAttribute("aria-label", "Remove " + name.firstChild.textContent);
      button.addEventListener("click", function () { remove(device.id, button); });
      item.appendChild(button);
    }
    return item;
  }

  function bindPage() {
    var stateEl = document.getElementById("flaskpush-state");
    if (!stateEl) return;
    var enableEl = document.getElementById("flaskpush-enable");
    var disableEl = document.getElementById("flaskpush-disable");
    var messageEl = document.getElementById("flaskpush-message");
    var devicesEl = document.getElementById("flaskpush-devices");
    var deviceListEl = document.getElementById("flaskpush-device-list");

    function renderDevices() {
      if (!devicesEl || !deviceListEl) return;
      return devices().then(function (list) {
        deviceListEl.replaceChildren.apply(deviceListEl, list.map(function (device) {
          return deviceItem(device, removeFromList);
        }));
        devicesEl.hidden = list.length === 0;
      }, function () {
        devicesEl.hidden = true;
      });
    }

    /* On success the list renders anew (removeDevice announces the change). */
    function removeFromList(id, button) {
      button.disabled = true;
      if (messageEl) messageEl.textContent = "";
      removeDevice(id).catch(function (error) {
        if (messageEl) messageEl.textContent = error.message;
        button.disabled = false;
      });
    }

    function render() {
      renderDevices();
      return status().then(function (s) {
        var state = stateOf(s);
        stateEl.dataset.state = state;
        stateEl.textContent = STATE_TEXT[state];
        stateEl.removeAttribute("aria-busy");
        if (enableEl) enableEl.hidden = state !== "disabled";
        if (disableEl) disableEl.hidden = state !== "enabled";
      });
    }

    function act(action) {
      if (enableEl) enableEl.disabled = true;
      if (disableEl) disableEl.disabled = true;
      if (messageEl) messageEl.textContent = "";
      action().catch(function (error) {
        if (messageEl) messageEl.textContent = error.message;
      }).then(render).then(function () {
        if (enableEl) enableEl.disabled = false;
        if (disableEl) disableEl.disabled = false;
      });
    }

    if (enableEl) enableEl.addEventListener("click", function () { act(enable); });
    if (disableEl) disableEl.addEventListener("click", function () { act(disable); });
    listeners.push(render);
    render();
  }

  window.flaskpush = {
    config: config,
    enable: enable,
    disable: disable,
    status: status,
    devices: devices,
    removeDevice: removeDevice,
    reconnect: reconnect,
  };

  connect();
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", bindPage);
  else bindPage();
})();

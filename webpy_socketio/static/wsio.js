/*
 * webpy-socketio client extension: channels for the official socket.io-client 4.
 *
 * Load it after socket.io.min.js (the socketio_scripts.html include does). It adds:
 *
 *   socket.subscribe(channel[, callback])    -> Promise of {ok: true} or {ok: false, error}
 *   socket.unsubscribe(channel[, callback])  -> Promise of the same
 *   socket.channels                          -> the channels this socket is in
 *
 * After a reconnect the server has a new socket that is in no channel, so every
 * channel the page had is subscribed again. A channel the server refuses on that
 * occasion is dropped and reported with the local event "wsio:refused".
 *
 * In Node: require("./wsio.js")(require("socket.io-client")).
 *
 * Under `wsio runserver` the include marks this script's tag with
 * data-wsio-reload; then every socket the page opens with io() reloads the
 * page when the server emits "wsio:reload" with {reload: true} (a template or
 * static file changed). Without the mark nothing listens.
 */
(function (root, install) {
  function reloading(lookup, location) {
    function io() {
      var socket = lookup.apply(this, arguments);
      socket.on("wsio:reload", function (info) {
        if (info && info.reload) {
          location.reload();
        }
      });
      return socket;
    }
    Object.keys(lookup).forEach(function (key) {
      io[key] = lookup[key];
    });
    io.io = io.connect = io;
    return io;
  }

  if (typeof module === "object" && module.exports) {
    module.exports = install;
  } else {
    install(root.io);
    var tag = root.document && root.document.currentScript;
    if (tag && tag.hasAttribute("data-wsio-reload")) {
      root.io = reloading(root.io, root.location);
    }
  }
})(typeof self !== "undefined" ? self : this, function (io) {
  "use strict";
  if (!io || !io.Socket) {
    throw new Error("webpy-socketio: load socket.io-client before wsio.js");
  }
  var proto = io.Socket.prototype;
  if (proto.subscribe) {
    return io;
  }

  function notify(socket, name, a, b) {
    // a local event for the page, never sent to the server
    if (typeof socket.emitReserved === "function") {
      socket.emitReserved(name, a, b);
    }
  }

  function state(socket) {
    if (!socket._wsio) {
      var st = { channels: new Set(), lost: false };
      socket._wsio = st;
      socket.on("disconnect", function () {
        st.lost = true;
      });
      socket.on("connect", function () {
        if (!st.lost) {
          return;
        }
        st.lost = false;
        st.channels.forEach(function (channel) {
          socket.emit("wsio:subscribe", channel, function (reply) {
            if (!reply || !reply.ok) {
              st.channels.delete(channel);
              notify(socket, "wsio:refused", channel, reply);
            }
          });
        });
      });
    }
    return socket._wsio;
  }

  function request(socket, name, channel, callback, done) {
    return new Promise(function (resolve) {
      socket.emit(name, channel, function (reply) {
        reply = reply || { ok: false, error: "no reply" };
        done(reply);
        if (typeof callback === "function") {
          callback(reply);
        }
        resolve(reply);
      });
    });
  }

  proto.subscribe = function (channel, callback) {
    var st = state(this);
    return request(this, "wsio:subscribe", channel, callback, function (reply) {
      if (reply.ok) {
        st.channels.add(channel);
      }
    });
  };

  proto.unsubscribe = function (channel, callback) {
    var st = state(this);
    st.channels.delete(channel);
    return request(this, "wsio:unsubscribe", channel, callback, function () {});
  };

  Object.defineProperty(proto, "channels", {
    configurable: true,
    get: function () {
      return Array.from(state(this).channels);
    },
  });

  return io;
});

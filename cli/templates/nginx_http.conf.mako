<%
    upgrade = c.name + "_connection"
    host = c.name + "_host"
    route = c.name + "_route"
    backend = c.name + "_backend"
    several = len(c.upstreams) > 1
    cookie = several and c.sticky == "cookie"
%>\
# nginx config for a webpy-socketio app, made by:
#   ${c.command_line()}
#
# It goes in nginx's http {} context: on Debian and Ubuntu, save it as
# /etc/nginx/sites-enabled/${c.name}.conf (or conf.d/${c.name}.conf), then run
# `nginx -t && systemctl reload nginx`.
#
# Socket.IO heartbeat (from the settings): a ping every ${'%g' % c.ping_interval} s and a pong
# within ${'%g' % c.ping_timeout} s. The proxy timeouts below (${c.proxy_timeout} s) exceed the two
# together, so nginx never cuts a quiet but healthy connection.

# "Connection: upgrade" only for websocket handshakes; an empty value keeps
# the other requests on the pooled keepalive connections.
map $http_upgrade $${upgrade} {
    default upgrade;
    ""      "";
}

# The Host the browser used, port included: engine.io compares the Origin
# header with X-Forwarded-Proto://X-Forwarded-Host, and the port is part of
# the origin.
map $http_host $${host} {
    ""      $host;
    default $http_host;
}
% if cookie:

# Sticky cookie: a browser without the cookie is routed by this request's
# random id, and the id is set as its cookie, so its next requests (the
# Socket.IO handshake and every poll) hash to the same process.
map $cookie_${route} $${route} {
    ""      $request_id;
    default $cookie_${route};
}
map $cookie_${route} $${route}_set {
    ""      "${route}=$request_id; Path=/; HttpOnly; SameSite=Lax${'; Secure' if c.tls else ''}";
    default "";
}
% endif

upstream ${backend} {
% if several and c.sticky == "hash":
    # Long-polling needs every request of a session on the process that
    # created it. Consistent hashing of the whole client address keeps each
    # client on one process; adding a process moves only its share of them.
    hash $remote_addr consistent;
% elif several and c.sticky == "ip_hash":
    # Long-polling needs every request of a session on the process that
    # created it. ip_hash uses the first three octets of an IPv4 address, so
    # a whole /24 (or everybody behind one NAT) shares a process.
    ip_hash;
% elif cookie:
    # Long-polling needs every request of a session on the process that
    # created it: hash the per-browser cookie set below.
    hash $${route} consistent;
% endif
% for a in c.upstreams:
    server ${a};
% endfor
    keepalive 16;
}
% if c.tls:

# Plain HTTP only sends browsers to HTTPS.
server {
% for a in c.listen:
    listen ${a};
% endfor
    server_name ${" ".join(c.server_names)};
    return 301 ${c.redirect_target};
}
% endif

server {
% if c.tls:
% for a in c.tls_listen:
    listen ${a} ssl;
% endfor
% else:
% for a in c.listen:
    listen ${a};
% endfor
% endif
    server_name ${" ".join(c.server_names)};
% if c.tls:

    ssl_certificate     ${c.tls_cert};
    ssl_certificate_key ${c.tls_key};
    ssl_protocols       TLSv1.2 TLSv1.3;
    ssl_session_timeout 1d;
% endif
% if cookie:

    add_header Set-Cookie $${route}_set always;
% endif

    proxy_http_version 1.1;
    proxy_set_header Upgrade           $http_upgrade;
    proxy_set_header Connection        $${upgrade};
    proxy_set_header Host              $${host};
    proxy_set_header X-Forwarded-Host  $${host};
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header X-Forwarded-For   $proxy_add_x_forwarded_for;
    proxy_set_header X-Real-IP         $remote_addr;

    location ${c.resource} {
        proxy_pass http://${backend};
        # long-polling answers and websocket frames go out as they come
        proxy_buffering off;
        proxy_read_timeout ${c.proxy_timeout}s;
        proxy_send_timeout ${c.proxy_timeout}s;
        # polling POSTs carry client messages (SOCKETIO_MAX_MESSAGE_BYTES)
        client_max_body_size ${c.body_limit};
    }
% if several:

    # Each process's health, for a monitor that checks them one by one
    # through nginx: ${c.resource}health answers 200, or 503 with the reason
    # (a deaf message queue subscription, say). ${c.resource}health alone
    # reaches whichever process the client is sticky to.
% for i, a in enumerate(c.upstreams):
    location = ${c.resource}health/${i} {
        proxy_pass http://${a}${c.resource}health;
        access_log off;
    }
% endfor
% endif
% if c.static_root:

    location ${c.static_url} {
        alias ${c.static_root};
        expires 1h;
        access_log off;
    }
% endif

    location / {
        proxy_pass http://${backend};
    }
}

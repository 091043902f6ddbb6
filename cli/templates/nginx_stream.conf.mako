<%
    backend = c.name + "_backend"
%>\
# nginx TCP proxy for a webpy-socketio app, made by:
#   ${c.command_line()}
#
# This is a stream {} block: it goes in nginx's main context, NOT inside
# http {}. Save it as, say, /etc/nginx/${c.name}-stream.conf and add
#   include /etc/nginx/${c.name}-stream.conf;
# at the top level of /etc/nginx/nginx.conf.
#
# The stream module: Debian and Ubuntu ship it separately; install it with
#   apt install libnginx-mod-stream
# which loads it through /etc/nginx/modules-enabled/. Elsewhere, when nginx
# was built with --with-stream=dynamic, put this line at the very top of
# nginx.conf:
#   load_module modules/ngx_stream_module.so;
#
# A TCP proxy sees no HTTP: nginx serves no static files here, adds no
# X-Forwarded-For (the app sees nginx's address) and cannot terminate TLS for
# the app. Use --mode http for those.
#
# Socket.IO heartbeat (from the settings): a ping every ${'%g' % c.ping_interval} s and a pong
# within ${'%g' % c.ping_timeout} s; the idle timeout below (${c.proxy_timeout} s) exceeds both together.

stream {
    upstream ${backend} {
% if len(c.upstreams) > 1:
        # Long-polling needs every request of a session on the process that
        # created it: consistent hashing of the client address.
        hash $remote_addr consistent;
% endif
% for a in c.upstreams:
        server ${a};
% endfor
    }

    server {
% for a in c.listen:
        listen ${a};
% endfor
        proxy_pass ${backend};
        proxy_connect_timeout 5s;
        proxy_timeout ${c.proxy_timeout}s;
    }
}

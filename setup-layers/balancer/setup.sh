# balancer — HAProxy on port 80 for the nodeset's host names, spreading requests over the app
# servers listed in /etc/silverlining/nodeset.conf, with health checks and retries so that a
# server leaving rotation fails no request. `silver-balancer disable|enable|status NODE` takes
# one app server out of rotation and back (runtime API; survives until the next reload).
# Input: SILVER_PACKAGES SILVER_HOSTNAMES SILVER_APPSERVERS (lines "NAME ADDRESS", used only by
# check-only runs, when nodeset.conf may not be written yet)

ensure_pkgs $SILVER_PACKAGES

# The app servers, as wiring wrote them: "appserver = NAME ADDRESS".
if [ "$CHECK" = 1 ] || [ ! -f /etc/silverlining/nodeset.conf ]; then
  _servers=$SILVER_APPSERVERS
else
  _servers=$(awk '$1 == "appserver" && $2 == "=" { print $3, $4 }' /etc/silverlining/nodeset.conf)
fi

_cfg=$(mktemp)
{
  cat <<'EOT'
# managed by silver
global
	log /dev/log local0 warning
	stats socket /run/haproxy/admin.sock mode 660 level admin expose-fd listeners
	stats timeout 30s
	user haproxy
	group haproxy
	daemon

defaults
	mode http
	log global
	option httplog
	option dontlognull
	timeout connect 2s
	timeout client 30s
	timeout server 60s
	timeout http-request 10s
	retries 3
	option redispatch 1
	retry-on conn-failure empty-response response-timeout 502 503
	http-reuse safe

frontend www
	bind :80
	http-request return status 200 content-type text/plain string "ok" if { path /.silver/balancer-health }
EOT
  if [ -n "$SILVER_HOSTNAMES" ]; then
    echo "	acl silver_host req.hdr(host),field(1,:) -i $(echo $SILVER_HOSTNAMES)"
    echo "	use_backend appservers if silver_host"
    echo "	default_backend unknown_host"
  else
    echo "	default_backend appservers"
  fi
  cat <<'EOT'

backend unknown_host
	http-request return status 404 content-type text/plain string "unknown host"

backend appservers
	balance roundrobin
	option httpchk
	http-check send meth GET uri /.silver/health ver HTTP/1.1 hdr Host silver-health
	http-check expect status 200
	default-server inter 1s fastinter 500ms downinter 1s fall 2 rise 2
EOT
  printf '%s\n' "$_servers" | awk 'NF == 2 { printf "\tserver %s %s:80 check\n", $1, $2 }'
} > "$_cfg"
if ! cmp -s "$_cfg" /etc/haproxy/haproxy.cfg && [ "$CHECK" != 1 ]; then
  haproxy -c -q -f "$_cfg" || { echo "haproxy configuration does not validate" >&2; exit 1; }
fi
ensure_file /etc/haproxy/haproxy.cfg 644 root:root < "$_cfg"
_changed=$CHANGED
rm -f "$_cfg"

# bin/silver-balancer is installed by silver with every layer's bin/ helpers.


ensure_on haproxy
[ "$_changed" = 1 ] && reload_unit haproxy
true

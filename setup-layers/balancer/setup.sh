# balancer — HAProxy on port 80 for the nodeset's host names, spreading requests over the app
# servers listed in /etc/silverlining/nodeset.conf, with health checks and retries so that a
# server leaving rotation fails no request. `silver-balancer disable|enable|status NODE` takes
# one app server out of rotation and back (runtime API; survives until the next reload).
# Input: SILVER_PACKAGES SILVER_HAPROXY_CFG (+ _MD5: rendered by silver from the host names and
# the app servers)

ensure_pkgs $SILVER_PACKAGES

# The configuration is rendered by silver from the app servers, as wiring lists them in
# nodeset.conf; checked by haproxy before it replaces the running one.
if ! known_same /etc/haproxy/haproxy.cfg "$SILVER_HAPROXY_CFG_MD5" "$SILVER_HAPROXY_CFG" && [ "$CHECK" != 1 ]; then
  _cfg=$(mktemp)
  printf '%s' "$SILVER_HAPROXY_CFG" > "$_cfg"
  haproxy -c -q -f "$_cfg" || { rm -f "$_cfg"; echo "haproxy configuration does not validate" >&2; exit 1; }
  rm -f "$_cfg"
fi
ensure_known /etc/haproxy/haproxy.cfg 644 root:root "$SILVER_HAPROXY_CFG_MD5" "$SILVER_HAPROXY_CFG"
_changed=$CHANGED

# bin/silver-balancer is installed by silver with every layer's bin/ helpers.


ensure_on haproxy
[ "$_changed" = 1 ] && reload_unit haproxy
true

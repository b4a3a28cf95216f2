# balancer — HAProxy on port 80 for the nodeset's host names: a backend per location, spreading
# requests over the app servers listed in /etc/silverlining/nodeset.conf, each checked with the
# app's health_check, with retries so that a server leaving rotation fails no request.
# `silver-balancer disable|enable|drain|status NODE` takes one app server out of rotation in
# every backend and back (runtime API; survives until the next reload); `silver-balancer
# set-health APP PATH` changes an app's check in the configuration and reloads; `silver-balancer
# mode ...` (`silver maintenance`) the maintenance and read-only modes, without a reload.
# Input: SILVER_PACKAGES SILVER_HAPROXY_CFG (+ _MD5: rendered by silver from the host names, the
# locations, the apps' health paths and the app servers), SILVER_MODES and SILVER_ALLOW (the
# nodeset's maintenance record: KEY:MODE:RETRY:MESSAGE_B64 entries, CIDRs; a summary to report)

# shellcheck disable=SC2086 # (a list of package names, split on purpose)
ensure_pkgs $SILVER_PACKAGES

# The modes' files, which the configuration reads (so before it is checked): written from the
# nodeset's record only when missing (a new or rebuilt balancer gets the modes back); existing
# ones are this balancer's truth, changed only by `silver maintenance`, never turned off here.
# (the apps' pages, /etc/haproxy/silver-pages.map, are made empty here: each app's next update
# sends its own)
if [ ! -e /etc/haproxy/silver-modes.map ] || [ ! -e /etc/haproxy/silver-allow.acl ] || [ ! -e /etc/haproxy/silver-pages.map ]; then
  if [ "$CHECK" = 1 ]; then
    changed "the maintenance modes' files (from the nodeset's record: $SILVER_MODES_SUMMARY)"
  else
    # (no pathname expansion: a key is * for every app)
    set -f
    # shellcheck disable=SC2086 # (entries and addresses without spaces, split on purpose)
    _made=$(/usr/local/lib/silverlining/bin/silver-balancer mode restore $SILVER_MODES --allow $SILVER_ALLOW)
    set +f
    for _f in $_made; do
      case "$_f" in /*) changed "$_f (from the nodeset's record: $SILVER_MODES_SUMMARY)" ;; esac
    done
  fi
fi

# The configuration is rendered by silver from the locations and the app servers, as wiring
# lists them in nodeset.conf; checked by haproxy before it replaces the running one, in root's
# own /run/silverlining (a name in the shared /tmp could be a planted link).
if ! known_same /etc/haproxy/haproxy.cfg "$SILVER_HAPROXY_CFG_MD5" "$SILVER_HAPROXY_CFG" && [ "$CHECK" != 1 ]; then
  # shellcheck disable=SC2174 # (/run exists: -m applies to the one directory made)
  mkdir -p -m 700 /run/silverlining
  if [ -L /run/silverlining ] || [ ! -d /run/silverlining ] || [ "$(stat -c %u /run/silverlining)" != 0 ]; then
    echo "/run/silverlining is not a directory owned by root" >&2
    exit 1
  fi
  _cfg=/run/silverlining/haproxy.cfg.$$
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

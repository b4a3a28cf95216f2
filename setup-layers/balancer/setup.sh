# balancer — HAProxy on port 80 for the nodeset's host names: a backend per location, spreading
# requests over the app servers listed in /etc/silverlining/nodeset.conf, each checked with the
# app's health_check, with retries so that a server leaving rotation fails no request.
# `silver-balancer disable|enable|drain|status NODE` takes one app server out of rotation in
# every backend and back (runtime API; survives until the next reload); `silver-balancer
# set-health APP PATH` changes an app's check in the configuration and reloads; `silver-balancer
# mode ...` (`silver maintenance`) the maintenance and read-only modes, without a reload.
# Input: SILVER_PACKAGES SILVER_HAPROXY_CFG (+ _MD5: rendered by silver from the host names, the
# locations, the apps' health paths and the app servers), SILVER_MODES and SILVER_ALLOW (the
# nodeset's maintenance record: KEY:MODE:RETRY:MESSAGE_B64 entries, CIDRs; a summary to report),
# SILVER_APPS_SEQ (the seq of the apps record the health paths come from)

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

# HTTPS (tls = in [balancer]): what the configuration reads must be there before it is checked:
# the certificates' folder, the self-signed default for names without their own (outside that
# folder: the bind line names it first, so no host's certificate can become the default by its
# name's order; an earlier release's 0-default.pem in the folder is copied there, and removed
# once the new configuration is loaded), the ACME
# answers' map; for tls = acme, acme.conf and the ACME server's CA bundle for silver-acme; for
# tls = FILE, that PEM (root's alone).
if [ "$SILVER_TLS" != off ]; then
  ensure_dir /etc/haproxy/certs 700 root:root
  if [ ! -e /etc/haproxy/silver-default.pem ]; then
    changed "/etc/haproxy/silver-default.pem (self-signed, for names without a certificate of their own)"
    if [ "$CHECK" != 1 ]; then
      if [ -f /etc/haproxy/certs/0-default.pem ] && [ ! -L /etc/haproxy/certs/0-default.pem ]; then
        # (copied: the configuration on disk may still name only the folder, until the new one
        # is in place; the old file goes after that, below)
        cp -p /etc/haproxy/certs/0-default.pem /etc/haproxy/silver-default.pem.new
        mv -f /etc/haproxy/silver-default.pem.new /etc/haproxy/silver-default.pem
      else
        root_run_dir /run/silverlining || { echo "/run/silverlining is not a folder of root's alone" >&2; exit 1; }
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=silver-default -keyout /run/silverlining/default.key -out /run/silverlining/default.crt 2> /dev/null
        (umask 077 && cat /run/silverlining/default.crt /run/silverlining/default.key > /etc/haproxy/silver-default.pem.new)
        rm -f /run/silverlining/default.key /run/silverlining/default.crt
        mv -f /etc/haproxy/silver-default.pem.new /etc/haproxy/silver-default.pem
      fi
      chmod 600 /etc/haproxy/silver-default.pem
    fi
  fi
  if [ ! -e /etc/haproxy/silver-acme.map ]; then
    changed /etc/haproxy/silver-acme.map
    act sh -c ': > /etc/haproxy/silver-acme.map'
  fi
fi
if [ "$SILVER_TLS" = file ]; then
  ensure_known /etc/haproxy/certs/silver-given.pem 600 root:root "$SILVER_TLS_PEM_MD5" "$SILVER_TLS_PEM"
  # (certificates an earlier tls = acme got would compete with the given one for their names)
  for _h in $SILVER_TLS_HOSTS; do ensure_absent "/etc/haproxy/certs/$_h.pem"; done
else
  ensure_absent /etc/haproxy/certs/silver-given.pem
fi
if [ "$SILVER_TLS" = acme ]; then
  ensure_known /etc/silverlining/acme.conf 644 root:root "$SILVER_ACME_CONF_MD5" "$SILVER_ACME_CONF"
  if [ -n "$SILVER_ACME_CA" ]; then
    ensure_known /etc/silverlining/acme-ca.pem 644 root:root "$SILVER_ACME_CA_MD5" "$SILVER_ACME_CA"
  else
    ensure_absent /etc/silverlining/acme-ca.pem
  fi
  ensure_file /etc/systemd/system/silver-acme.service 644 root:root <<'EOT'
# managed by silver: the balancer's certificates, renewed within 30 days of their end
[Unit]
Description=silver ACME certificates
After=haproxy.service
[Service]
Type=oneshot
ExecStart=/usr/local/lib/silverlining/bin/silver-acme run
EOT
  _acme_units=$CHANGED
  ensure_file /etc/systemd/system/silver-acme.timer 644 root:root <<'EOT'
# managed by silver
[Unit]
Description=silver ACME certificates
[Timer]
OnCalendar=daily
RandomizedDelaySec=3600
Persistent=true
[Install]
WantedBy=timers.target
EOT
  if [ "$CHANGED" = 1 ] || [ "$_acme_units" = 1 ]; then
    changed "systemctl daemon-reload"
    act systemctl daemon-reload
  fi
  followed /etc/systemd/system/silver-acme.service /etc/systemd/system/silver-acme.timer "systemctl daemon-reload"
  ensure_on silver-acme.timer
else
  ensure_off silver-acme.timer
  ensure_absent /etc/silverlining/acme.conf
fi

# A pair with tls = acme shares one certificate: the one that renews hands it to the other over
# SSH with the pair's key (root's file here), as user silver-acme, which may run `silver-acme
# receive` through one sudo rule and nothing else (its authorized key: restrict, from the other's
# address, that forced command); the other's host key pinned by silver.
if [ -n "${SILVER_ACME_PEER:-}" ]; then
  ensure_user silver-acme /var/lib/silverlining/acme-peer /bin/sh
  ensure_known /etc/silverlining/authorized_keys/silver-acme 644 root:root "$SILVER_ACME_RECEIVE_KEYS_MD5" "$SILVER_ACME_RECEIVE_KEYS"
  ensure_file /etc/sudoers.d/silver-acme 440 root:root <<'EOT'
# managed by silver: the other balancer of the pair hands its certificate over, nothing else
silver-acme ALL=(root) NOPASSWD: /usr/local/lib/silverlining/bin/silver-acme receive
EOT
  ensure_known /etc/silverlining/acme-peer.key 600 root:root "$SILVER_ACME_PEER_KEY_MD5" "$SILVER_ACME_PEER_KEY"
  ensure_known /etc/silverlining/acme-peer.known 644 root:root "$SILVER_ACME_PEER_KNOWN_MD5" "$SILVER_ACME_PEER_KNOWN"
else
  ensure_absent /etc/silverlining/authorized_keys/silver-acme
  ensure_absent /etc/sudoers.d/silver-acme
  ensure_absent /etc/silverlining/acme-peer.key
  ensure_absent /etc/silverlining/acme-peer.known
fi

# The configuration is rendered by silver from the locations and the app servers, as wiring
# lists them in nodeset.conf; checked by haproxy before it replaces the running one, in root's
# own /run/silverlining (a name in the shared /tmp could be a planted link).
if ! known_same /etc/haproxy/haproxy.cfg "$SILVER_HAPROXY_CFG_MD5" "$SILVER_HAPROXY_CFG" && [ "$CHECK" != 1 ]; then
  root_run_dir /run/silverlining || { echo "/run/silverlining is not a folder of root's alone" >&2; exit 1; }
  # (the configuration's lock, which silver-balancer's set-health holds too: a health path an
  # update sets meanwhile is neither lost under this write nor written over it)
  exec 7> /run/silverlining/haproxy-cfg.lock
  flock -w 120 7 || { echo "haproxy.cfg is being changed by silver-balancer: try again" >&2; exit 1; }
  _cfg=/run/silverlining/haproxy.cfg.$$
  printf '%s' "$SILVER_HAPROXY_CFG" > "$_cfg"
  haproxy -c -q -f "$_cfg" || { rm -f "$_cfg"; echo "haproxy configuration does not validate" >&2; exit 1; }
  rm -f "$_cfg"
fi
ensure_known /etc/haproxy/haproxy.cfg 644 root:root "$SILVER_HAPROXY_CFG_MD5" "$SILVER_HAPROXY_CFG"
_changed=$CHANGED
exec 7>&-
# Written from the apps record this run read at its start: the health paths of the node's replica
# now (an update may have set one since) are put back in.
if [ "$_changed" = 1 ] && [ "$CHECK" != 1 ]; then
  /usr/local/lib/silverlining/bin/silver-balancer resync-health "$SILVER_APPS_SEQ" > /dev/null
fi

# bin/silver-balancer is installed by silver with every layer's bin/ helpers.


ensure_on haproxy
[ "$_changed" = 1 ] && reload_unit haproxy
followed /etc/haproxy/haproxy.cfg "reload haproxy"
# (an earlier release's default, in the certificates' folder: gone once the configuration that
# names the new one first is loaded — with the folder alone, an empty folder would not load)
[ "$SILVER_TLS" = off ] || ensure_absent /etc/haproxy/certs/0-default.pem

# A balancer pair (nodes = 2, virtual_address): keepalived holds the shared address on one of
# the two (configuration rendered by silver: src/setup/keepalived.ts).
if [ "$SILVER_VRRP" = 1 ]; then
  ensure_known /etc/keepalived/keepalived.conf 644 root:root "$SILVER_KEEPALIVED_CONF_MD5" "$SILVER_KEEPALIVED_CONF"
  _vrrp_changed=$CHANGED
  ensure_on keepalived
  [ "$_vrrp_changed" = 1 ] && reload_unit keepalived
  followed /etc/keepalived/keepalived.conf "reload keepalived"
else
  ensure_off keepalived
fi

# With tls = acme, a certificate for every host name (asked of the ACME server only for a host
# without one: renewals are the timer's). Of a pair only the first balancer orders here
# (SILVER_ACME_ORDER); silver gives the other the same certificate right after the layers.
if [ "$SILVER_TLS" = acme ]; then
  _need=''
  for _h in $SILVER_TLS_HOSTS; do [ -e "/etc/haproxy/certs/$_h.pem" ] || _need="$_need $_h"; done
  # (a rebuilt balancer: the account and certificates silver kept, before the ACME server is asked)
  if [ -n "$_need" ] && [ -n "$SILVER_TLS_STATE" ]; then
    changed "certificates for$_need (from silver's state)"
    if [ "$CHECK" != 1 ]; then
      printf '%s\n' "$SILVER_TLS_STATE" | /usr/local/lib/silverlining/bin/silver-acme import >&2 || { echo "silver's certificates could not be restored" >&2; exit 1; }
      _need=''
      for _h in $SILVER_TLS_HOSTS; do [ -e "/etc/haproxy/certs/$_h.pem" ] || _need="$_need $_h"; done
    fi
  fi
  if [ -n "$_need" ] && [ "$SILVER_ACME_ORDER" = 1 ]; then
    changed "certificates for$_need (from the ACME server)"
    act /usr/local/lib/silverlining/bin/silver-acme run --local >&2 || { echo "no certificate for$_need from the ACME server (see above)" >&2; exit 1; }
  fi
fi
true

# appserver — the local front proxy: nginx on port 80 routes each location (host + path prefix)
# to its application's active instance. The upstream of each app is a file that `silver update`
# rewrites on activation; this layer only creates it when missing (pointing nowhere yet).
# Input: SILVER_PACKAGES SILVER_APPS SILVER_NGINX_CONF (+ _MD5: rendered by silver from the locations)

# shellcheck disable=SC2086 # (a list of package names, split on purpose)
ensure_pkgs $SILVER_PACKAGES
prestat /etc/silverlining/nginx /etc/nginx/conf.d/silver.conf /usr/local/lib/silverlining/bin/silver-deploy
ensure_dir /etc/silverlining/nginx 755 root:root

for app in $SILVER_APPS; do
  if [ ! -f "/etc/silverlining/nginx/upstream-$app.conf" ]; then
    ensure_file "/etc/silverlining/nginx/upstream-$app.conf" 644 root:root <<EOT
# written by silver update on activation; no instance of $app is active yet
upstream silver_app_$app {
	server 127.0.0.1:9 down;
}
EOT
  fi
done

# The server blocks (one per host name, a location per app) are rendered by silver; the
# working file is kept in root's /run/silverlining until nginx accepts the new one.
_conf=/etc/nginx/conf.d/silver.conf
# (_wrote: this run writes the file, or an earlier run wrote it and did not get to nginx -t —
# its working copy still in /run, or the file on its list of changes)
_wrote=0
_pending "$_conf"
[ "$CHANGED" = 0 ] || _wrote=1
[ ! -f /run/silverlining/silver.conf.working ] || _wrote=1
if [ ! -f "$_conf" ] || ! known_same "$_conf" "$SILVER_NGINX_CONF_MD5" "$SILVER_NGINX_CONF"; then
  _wrote=1
  # (a working copy an earlier run kept is the one that worked: it stays)
  if [ "$CHECK" != 1 ] && [ -f "$_conf" ] && [ ! -f /run/silverlining/silver.conf.working ]; then
    root_run_dir /run/silverlining || { echo "/run/silverlining is not a folder of root's alone" >&2; exit 1; }
    cp -p "$_conf" /run/silverlining/silver.conf.working
  fi
fi
ensure_known "$_conf" 644 root:root "$SILVER_NGINX_CONF_MD5" "$SILVER_NGINX_CONF"
_changed=$CHANGED
ensure_absent /etc/nginx/sites-enabled/default
[ "$CHANGED" = 1 ] && _changed=1

if [ "$_changed" = 1 ] && [ "$CHECK" != 1 ] && ! nginx -t -q; then
  # A configuration this run wrote and nginx rejects never stays in place; one it did not write
  # (a follow-up of an earlier run, another file's change) is left as it is.
  if [ "$_wrote" = 0 ]; then
    echo "nginx -t fails, though silver's configuration is as it was: see nginx -t" >&2
  else
    if [ -f /run/silverlining/silver.conf.working ]; then mv -f /run/silverlining/silver.conf.working "$_conf"; else rm -f "$_conf"; fi
    echo "nginx configuration does not validate; the working one is kept" >&2
  fi
  exit 1
fi
[ ! -e /run/silverlining/silver.conf.working ] || rm -f /run/silverlining/silver.conf.working
ensure_on nginx
[ "$_changed" = 1 ] && reload_unit nginx
followed "$_conf" /etc/nginx/sites-enabled/default "reload nginx"

# At boot the active instance of every app starts (and an interrupted switch is completed),
# without silver: the node's own record decides.
ensure_file /etc/systemd/system/silver-boot.service 644 root:root <<'EOT'
[Unit]
Description=silverlining: the active instance of every app
After=network.target nginx.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/lib/silverlining/bin/silver-deploy boot

[Install]
WantedBy=multi-user.target
EOT
[ "$CHANGED" = 1 ] && act systemctl daemon-reload
followed /etc/systemd/system/silver-boot.service
ensure_on silver-boot

# The firewall's table of who may answer on each instance's port (nodes set up before it came:
# their instances get it now).
_apps=0
for _a in /var/lib/silverlining/apps/*; do [ ! -e "$_a" ] || _apps=1; done
if [ -x /usr/local/lib/silverlining/bin/silver-deploy ] && [ "$_apps" = 1 ]; then
  if [ "$CHECK" = 1 ]; then
    [ -f /etc/silverlining/nft.d/listeners.nft ] || changed "firewall: who may answer on the instances' ports"
  elif [ "$(/usr/local/lib/silverlining/bin/silver-deploy listeners)" = changed ]; then
    changed "firewall: who may answer on the instances' ports"
  fi
fi

# Each active instance runs and answers its health check; leftovers of an interrupted deploy
# are stopped (skipped while a deploy holds the nodeset's lock).
repair_instances
true
